"""Checks of the service's task definition."""

from __future__ import annotations

from vpclink_runbooks.checks.facts import (
    _expected_host_port,
    _main_mapping,
    _primary_tg,
)
from vpclink_runbooks.checks.inventory import Inventory
from vpclink_runbooks.checks.registry import Result, check

# -- task definition --

@check(id="task_definition.ports", hop="task_definition", severity="error", repaired_by="ecs",
       remedy="register a task definition with the params' ports and network mode, and redeploy")
def task_definition_ports(inv: Inventory) -> Result:
    """The service's task definition is bridge mode with hostPort H -> containerPort C."""
    td = inv.task_definition
    s = inv.params.service
    if td is None:
        return Result("task_definition.ports", "task_definition", "skip", "no service, so no task definition "
                      "(see service.running)")
    main = _main_mapping(inv)
    tg = _primary_tg(inv)
    problems = []
    p = inv.params
    if td.get("networkMode") != s.network_mode:
        problems.append(f"networkMode {td.get('networkMode')}, not {s.network_mode}")
    if main is None:
        problems.append(f"no mapping for containerPort {s.container_port}")
    elif not p.fixed_host_port:
        if (main.get("hostPort") or 0) != _expected_host_port(p):
            problems.append(f"hostPort {main.get('hostPort')}; expected {_expected_host_port(p)}")
    elif main.get("hostPort") != s.host_port:
        where = f"target group {tg['TargetGroupName']} is on port {tg['Port']}" if tg else "no target group"
        problems.append(f"hostPort {main.get('hostPort')} -> containerPort {s.container_port}; {where} and params "
                        f"say host_port {s.host_port}")
    name = f"{td['family']}:{td['revision']}"
    if problems:
        return Result("task_definition.ports", "task_definition", "fail", f"{name}: " + "; ".join(problems),
                      f"register a task definition with hostPort {s.host_port} -> {s.container_port} in bridge mode "
                      "and redeploy the service (repair does)")
    return Result("task_definition.ports", "task_definition", "pass",
                  f"{name} {s.network_mode} hostPort {_expected_host_port(p)} -> containerPort {s.container_port}")

