"""The sandbox's front door: one HTTP server on 127.0.0.1 that serves every custom domain name and every REST
API's invoke URL (`{restApiId}.execute-api.{region}.amazonaws.com`), told apart by the Host header as API
Gateway tells them apart by SNI/Host. Each request is resolved by `dataplane.handle`."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_CURRENT: list[Front] = []  # the running front of this process (moto's state is process wide: one at a time)


def current_url() -> str | None:
    """The URL of this process's running front, if any (served at {AWS_ENDPOINT_URL}/_sandbox/front)."""
    return _CURRENT[-1].url if _CURRENT else None


def _handler(account_id: str, region: str) -> type[BaseHTTPRequestHandler]:
    from . import dataplane

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            headers = {k: v for k, v in self.headers.items()}
            try:
                answer = dataplane.handle(account_id, region, self.command, self.headers.get("Host", ""), path,
                                          query, headers, body)
            except Exception as exc:  # noqa: BLE001 - a sandbox bug answers, visibly, instead of hanging up
                answer = dataplane.Answer(500, {"Content-Type": "application/json", "x-sandbox-hop": "sandbox",
                                                "x-sandbox-error": repr(exc)[:300]},
                                          b'{"message": "Internal server error"}', "sandbox")
            self.send_response(answer.status)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        def log_message(self, *args: Any) -> None:  # request logs are noise in tests and rehearsals
            pass

    return Handler


class Front:
    """A running front; `url` is "http://127.0.0.1:<port>"."""

    def __init__(self, account_id: str, region: str, port: int = 0):
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(account_id, region))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox-front", daemon=True)
        self._thread.start()
        _CURRENT.append(self)

    def stop(self) -> None:
        if self in _CURRENT:
            _CURRENT.remove(self)
        self._server.shutdown()
        self._server.server_close()


def start_front(account_id: str, region: str, port: int = 0) -> Front:
    return Front(account_id, region, port)
