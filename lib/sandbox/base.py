"""Shared by the sandbox's per-service patches of moto: one lock, the transition delays, the wrap helper and
the moto backends."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LOCK = threading.RLock()

DYNAMIC_PORTS = (32768, 60999)


@dataclass
class _Config:
    nlb_provisioning: float = 1.0
    vpc_link_pending: float = 1.0
    task_start: float = 0.5
    target_healthy: float = 0.5


_CFG = _Config()
_ORIG: dict[str, Any] = {}
_TL = threading.local()


def _now() -> float:
    return time.monotonic()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _wrap(cls: Any, name: str, key: str, factory: Any) -> None:
    orig = getattr(cls, name)
    _ORIG[key] = orig
    setattr(cls, name, factory(orig))


# --------------------------------------------------------------------------------------------
# ELBv2
# --------------------------------------------------------------------------------------------


def _elbv2(account_id: str, region: str) -> Any:
    from moto.elbv2.models import elbv2_backends

    return elbv2_backends[account_id][region]


def _ec2(account_id: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account_id][region]


def _ecs(account_id: str, region: str) -> Any:
    from moto.ecs.models import ecs_backends

    return ecs_backends[account_id][region]


def _apigw(account_id: str, region: str) -> Any:
    from moto.apigateway.models import apigateway_backends

    return apigateway_backends[account_id][region]


def _lb_active(lb: Any) -> bool:
    lb.activate()
    return lb.state == "active"
