"""One request through the custom domain, as a client sends it: URL, connect-to override, answer and deciding hop."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from vpclink_runbooks.aws import endpoint as endpoint_mod

CONNECT_TO_ENV = "RUNBOOK_CONNECT_TO"
BODY_LIMIT = 2000


def url_for(domain: str, base_path: str, path: str = "") -> str:
    """https://<domain>/<base_path>/<path>; a `(none)` or empty base path maps the domain's root."""
    base = "" if base_path in ("", "(none)") else base_path.strip("/") + "/"
    return f"https://{domain}/{base}{path.lstrip('/')}"


def parse_connect_to(value: str) -> dict[str, str]:
    """RUNBOOK_CONNECT_TO "domain=http://host:port,..." -> {domain: "http://host:port"}."""
    out = {}
    for item in value.split(","):
        domain, sep, target = item.strip().partition("=")
        if sep and domain.strip() and target.strip():
            out[domain.strip().lower()] = target.strip().rstrip("/")
    return out


def _served_front(endpoint: str) -> str | None:
    # An endpoint that is not the sandbox answers 404 (or nothing): then there is no override and DNS answers.
    try:
        with urllib.request.urlopen(endpoint.rstrip("/") + "/_sandbox/front", timeout=3) as response:
            return json.loads(response.read()).get("front")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def connect_to(domain: str) -> str | None:
    """Where to connect for `domain` instead of DNS + HTTPS (like curl --connect-to), or None for DNS.

    In order: RUNBOOK_CONNECT_TO; the front a running sandbox announced, when this process talks to that
    sandbox; the front served at {AWS_ENDPOINT_URL}/_sandbox/front; else none.
    """
    explicit = parse_connect_to(os.environ.get(CONNECT_TO_ENV, ""))
    if domain.lower() in explicit:
        return explicit[domain.lower()]
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    announced = endpoint_mod.running_sandbox()
    if announced and announced.get("front") and (not endpoint or endpoint == announced.get("endpoint")):
        return announced["front"]
    if endpoint:
        return _served_front(endpoint)
    return None


def _hop(status: int | None, headers: dict[str, str]) -> str:
    if "x-sandbox-hop" in headers:
        return headers["x-sandbox-hop"]
    if status is None:
        return "network"
    # On AWS the answer does not name the hop: API Gateway's own answers carry x-amzn-ErrorType.
    return "endpoint" if "x-amzn-errortype" in headers else "service"


def _answered_by(headers: dict[str, str], body: str) -> str | None:
    if headers.get("x-sandbox-task"):
        return headers["x-sandbox-task"]
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get("task_id") if isinstance(data, dict) else None


def send(domain: str, base_path: str, path: str = "", method: str = "GET", timeout: float = 35.0) -> dict:
    """Send one request to the custom domain; the answer with who decided it.

    Returns {url, status, ms, answered_by, hop, error_type, service_answered, body, via, error}. status None:
    no HTTP answer (error says why). service_answered: an HTTP answer without API Gateway's x-amzn-ErrorType.
    """
    url = url_for(domain, base_path, path)
    target = connect_to(domain)
    parts = urllib.parse.urlsplit(url)
    request_path = parts.path + (f"?{parts.query}" if parts.query else "")
    out: dict = {"url": url, "status": None, "ms": None, "answered_by": None, "hop": None, "error_type": None,
                 "service_answered": False, "body": "", "via": target, "error": None}
    started = time.monotonic()
    if target:
        over = urllib.parse.urlsplit(target)
        cls = http.client.HTTPSConnection if over.scheme == "https" else http.client.HTTPConnection
        conn = cls(over.hostname, over.port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection(domain, 443, timeout=timeout)
    try:
        conn.request(method, request_path, headers={"Host": domain, "Accept": "*/*"})
        response = conn.getresponse()
        raw = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        body = raw.decode("utf-8", "replace")
        out.update(status=response.status, reason=response.reason, error_type=headers.get("x-amzn-errortype"),
                   body=body[:BODY_LIMIT], answered_by=_answered_by(headers, body), hop=_hop(response.status, headers))
        out["service_answered"] = out["error_type"] is None
    except (OSError, http.client.HTTPException) as exc:
        out.update(error=f"{type(exc).__name__}: {exc}", hop="network")
    finally:
        conn.close()
    out["ms"] = round((time.monotonic() - started) * 1000)
    return out


def resolvable(domain: str) -> str | None:
    """None when a request to `domain` can be sent here (an override, or DNS answers); else why not."""
    if connect_to(domain):
        return None
    try:
        socket.getaddrinfo(domain, 443)
    except OSError as exc:
        return f"{domain} does not resolve here ({exc})"
    return None


def summary(answer: dict) -> list[str]:
    """What `runbook request` prints: the status line first, then latency, answering task and deciding hop."""
    if answer["status"] is None:
        lines = [f"no answer: {answer['error']}"]
    else:
        lines = [f"HTTP {answer['status']} {answer.get('reason', '')}".rstrip()]
    lines.append(f"latency: {answer['ms']} ms  ({answer['url']}" + (f" via {answer['via']})" if answer["via"]
                                                                       else ")"))
    lines.append(f"answered by: {answer['answered_by'] or ('the service' if answer['service_answered'] else '-')}")
    who = "the service" if answer["service_answered"] else (f"API Gateway ({answer['error_type']})"
                                                            if answer["error_type"] else "the network")
    lines.append(f"decided at hop: {answer['hop']} ({who})")
    return lines


def record_of(answer: dict) -> dict:
    """run.json's `request`."""
    return {k: answer.get(k) for k in ("url", "status", "ms", "answered_by", "hop")}
