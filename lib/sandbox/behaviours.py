"""AWS behaviour that moto 5.2 lacks, added in-process to the embedded moto server: the entry point.

Everything wraps moto's backend/response classes; clients still only talk HTTP through boto3. State
changes are lazy and time based (evaluated when a request reads the state), under one module-level
re-entrant lock (`base.LOCK`). One module per AWS service holds its patches, and its docstring lists the
moto gaps it fills: `ec2`, `elbv2`, `apigateway`, `apigatewayv2`, `ecs` (+ `ecs_scheduler`), `iam`.
"""

from __future__ import annotations

from typing import Any

from .apigateway import _install_apigateway, set_vpc_link_status
from .apigatewayv2 import _install_apigatewayv2, set_vpc_link_v2_status
from .base import _CFG, LOCK
from .ec2 import _install_ec2, _install_security_groups
from .ecs import _install_ecs
from .elbv2 import _install_elbv2
from .iam import AUTHORIZATIONS, _install_iam

__all__ = ["AUTHORIZATIONS", "LOCK", "install", "set_vpc_link_status", "set_vpc_link_v2_status"]

_INSTALLED = False


def install(delays: Any | None = None) -> None:
    """Patch moto (idempotent). `delays` (a server.Delays) updates the timings on every call."""
    global _INSTALLED
    with LOCK:
        if delays is not None:
            for name in ("nlb_provisioning", "vpc_link_pending", "task_start", "target_healthy"):
                setattr(_CFG, name, float(getattr(delays, name)))
        if _INSTALLED:
            return
        _install_elbv2()
        _install_apigateway()
        _install_ecs()
        _install_ec2()
        _install_iam()
        _install_apigatewayv2()
        _install_security_groups()
        _INSTALLED = True


