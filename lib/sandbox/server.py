"""Start the embedded AWS sandbox: moto in server mode on loopback, in this process.

Clients reach it only over HTTP through boto3's standard configuration (`AWS_ENDPOINT_URL`).
Note: moto keeps its state in process-wide globals, so every sandbox in one process shares the
same emulated AWS state (and the behaviours' delays are process wide too). `start_sandbox`
therefore resets that state by default: run one sandbox per process at a time.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from . import behaviours, faults, standins
from . import profile as profile_mod

if TYPE_CHECKING:
    from .world import WorldSpec


@dataclass
class Delays:
    """Seconds for realistic transitions."""

    nlb_provisioning: float = 1.0  # NLB state "provisioning" -> "active"
    vpc_link_pending: float = 1.0  # VPC link "PENDING" -> "AVAILABLE"
    task_start: float = 0.5  # ECS task PENDING -> RUNNING (then registered as a target)
    target_healthy: float = 0.5  # after registration, target "initial" -> "healthy"


class _SandboxSession(boto3.Session):
    """A boto3 Session whose clients and resources default to the sandbox endpoint."""

    def __init__(self, endpoint: str, **kwargs: Any):
        super().__init__(**kwargs)
        self._sandbox_endpoint = endpoint

    def client(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("endpoint_url", self._sandbox_endpoint)
        return super().client(*args, **kwargs)

    def resource(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("endpoint_url", self._sandbox_endpoint)
        return super().resource(*args, **kwargs)


def _make_server_class() -> type:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    class _QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    class SandboxMotoServer(ThreadedMotoServer):
        """ThreadedMotoServer whose WSGI app goes through the fault-injection middleware and the
        behaviours' lock, without werkzeug's per-request logging."""

        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            wrapped = faults.wsgi_middleware(app, lock=behaviours.LOCK)
            self._server = make_server(
                self._ip_address, self._port, wrapped, threaded=True, request_handler=_QuietHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return SandboxMotoServer


class Sandbox:
    """A running embedded sandbox."""

    def __init__(self, server: Any, endpoint: str, account_id: str, region: str):
        self._server = server
        self.endpoint = endpoint
        self.account_id = account_id
        self.region = region
        self.world: dict | None = None
        self.front: str | None = None  # the data plane's front, "http://127.0.0.1:<port>" (see front.py)
        self._front: Any = None

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 (and any AWS SDK/CLI) at this sandbox."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
        }

    def session(self, region: str | None = None) -> boto3.Session:
        """A boto3 Session (static test credentials) whose clients default to the sandbox endpoint."""
        return _SandboxSession(
            self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=region or self.region,
        )

    def stop(self) -> None:
        if self._front is not None:
            self._front.stop()
            self._front = None
        standins.stop_all()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_sandbox(
    *,
    account_id: str = "123456789012",
    region: str = "eu-west-2",
    delays: Delays | None = None,
    world: WorldSpec | None = None,
    port: int = 0,
    reset: bool = True,
    profile: profile_mod.Profile | None = None,
) -> Sandbox:
    """Start moto on 127.0.0.1 (a free port unless `port` is given), install the missing AWS
    behaviours, reset moto's process-wide state (unless `reset=False`) and seed `world` if given.
    The caller's AWS_* environment is left untouched;
    use `Sandbox.env()` to point clients at it."""
    os.environ["MOTO_ACCOUNT_ID"] = account_id
    # Request logs and the tracebacks of operations moto lacks (TestInvokeMethod) are noise here.
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    # The AWS-like profile (profile.py): given, or asked for by RUNBOOK_SANDBOX_PROFILE; its delays unless
    # `delays` are given. Process wide like the delays; None restores the fast default.
    profile = profile or profile_mod.from_env()
    behaviours.install(delays or (profile.delays() if profile else Delays()))
    profile_mod.install(profile)
    if reset:
        from moto.moto_api._internal.models import moto_api_backend

        with behaviours.LOCK:
            moto_api_backend.reset()
        standins.stop_all()  # the stand-ins of the state just reset must not outlive it
    server = _make_server_class()(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, real_port = server.get_host_and_port()
    sandbox = Sandbox(server, f"http://{host}:{real_port}", account_id, world.region if world else region)
    from .front import start_front

    sandbox._front = start_front(account_id, sandbox.region)
    sandbox.front = sandbox._front.url
    if world is not None:
        from .world import seed_world

        sandbox.world = seed_world(sandbox.session(world.region), world)
    return sandbox
