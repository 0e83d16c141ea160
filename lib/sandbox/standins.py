"""Real HTTP servers on loopback standing in for the containers of running ECS tasks, one per (task, container
port), so health checks and data-plane requests reach something that listens only while the task runs.

ECS
- moto runs no container; a stand-in answers any request 200 with JSON {task, task_id, container_port,
  method, path, query, headers} and header `x-sandbox-task`. It is reached through the address AWS would use:
  bridge/host mode the container instance's EC2 id + host port (the task's network bindings), awsvpc the task
  ENI's IP + container port. `sync` starts and stops servers to match the ECS backend's running tasks.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .base import LOCK, _ecs


@dataclass
class Standin:
    """One running stand-in: the task and container port it answers for, and where it listens."""

    task_arn: str
    container_port: int
    target: tuple[str, int]  # (instance id or task IP, port) as a target group registers it
    address: tuple[str, int] = ("127.0.0.1", 0)
    server: Any = field(default=None, repr=False)

    @property
    def task_id(self) -> str:
        return self.task_arn.rsplit("/", 1)[-1]


class _Handler(BaseHTTPRequestHandler):
    server_version = "sandbox-task"
    protocol_version = "HTTP/1.0"  # one request per connection: handler threads end with the answer

    def _answer(self) -> None:
        standin: Standin = self.server.standin  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        body = json.dumps({
            "task": standin.task_arn,
            "task_id": standin.task_id,
            "container_port": standin.container_port,
            "method": self.command,
            "path": parts.path,
            "query": parts.query,
            "headers": dict(self.headers.items()),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-sandbox-task", standin.task_id)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: the sandbox's own log says what it routed


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


# (account, region) -> {(task_arn, container_port): Standin}
_RUNNING: dict[tuple[str, str], dict[tuple[str, int], Standin]] = {}
_BY_TARGET: dict[tuple[str, str], dict[tuple[str, int], Standin]] = {}


def _start(standin: Standin) -> Standin:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.standin = standin  # type: ignore[attr-defined]
    standin.server = srv
    standin.address = ("127.0.0.1", srv.server_address[1])
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.25}, daemon=True,
                     name=f"standin-{standin.task_id[:8]}-{standin.container_port}").start()
    return standin


def _stop(standin: Standin, wait: bool) -> None:
    srv = standin.server
    if srv is None:
        return
    standin.server = None

    def down() -> None:
        srv.shutdown()
        srv.server_close()

    if wait:
        down()
    else:
        # shutdown() waits for the serve loop's poll; never make a caller holding base.LOCK wait for it.
        threading.Thread(target=down, daemon=True).start()


def _ports(ecs: Any, task: Any) -> list[tuple[str, int, int]]:
    """(target host, target port, container port) of each port a running task exposes."""
    ip = getattr(task, "_sbx_ip", None)
    if ip:
        try:
            td = ecs.describe_task_definition(task.task_definition_arn)
        except Exception:  # noqa: BLE001 - deregistered definition: its ports are unknown
            return []
        return [(ip, int(pm["containerPort"]), int(pm["containerPort"]))
                for c in td.container_definitions for pm in c.get("portMappings") or [] if pm.get("containerPort")]
    host = getattr(task, "_sbx_ec2_id", None)
    if host is None:
        ci_arn = getattr(task, "container_instance_arn", None)
        for cis in ecs.container_instances.values():
            for ci in cis.values():
                if ci.container_instance_arn == ci_arn:
                    host = ci.ec2_instance_id
    if host is None:
        return []
    bindings = getattr(task, "_sbx_bindings", None)
    if bindings is None:
        bindings = [b for c in getattr(task, "containers", []) or []
                    for b in (getattr(c, "network_bindings", None) or [])]
    return [(host, int(b["hostPort"]), int(b["containerPort"])) for b in bindings if b.get("hostPort")]


def sync(account_id: str, region: str) -> None:
    """Start a stand-in for each port of each running task and stop those of tasks no longer running."""
    with LOCK:
        ecs = _ecs(account_id, region)
        want: dict[tuple[str, int], tuple[str, int]] = {}
        for tasks in ecs.tasks.values():
            for task in tasks.values():
                if task.desired_status != "RUNNING" or task.last_status != "RUNNING":
                    continue
                for host, port, cport in _ports(ecs, task):
                    want[(task.task_arn, cport)] = (host, port)
        key = (account_id, region)
        running = _RUNNING.setdefault(key, {})
        changed = False
        for k in [k for k, s in running.items() if want.get(k) != s.target]:
            _stop(running.pop(k), wait=False)
            changed = True
        for k, target in want.items():
            if k not in running:
                running[k] = _start(Standin(k[0], k[1], target))
                changed = True
        if changed or key not in _BY_TARGET:
            _BY_TARGET[key] = {s.target: s for s in running.values()}


def for_target(account_id: str, region: str, target_id: str, port: int) -> Standin | None:
    """The stand-in of the running task holding `port` on instance `target_id` (or task IP `target_id`)."""
    with LOCK:
        return _BY_TARGET.get((account_id, region), {}).get((target_id, int(port)))


def all_running() -> list[Standin]:
    """Every live stand-in (for diagnostics and tests)."""
    with LOCK:
        return [s for running in _RUNNING.values() for s in running.values()]


def stop_all() -> None:
    """Stop every stand-in (sandbox stop or reset: the tasks they stood for are gone)."""
    with LOCK:
        standins = [s for running in _RUNNING.values() for s in running.values()]
        _RUNNING.clear()
        _BY_TARGET.clear()
    for s in standins:
        _stop(s, wait=True)
