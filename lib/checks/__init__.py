"""Verify (the doctor): fetch the live chain once into an inventory, then run pure checks hop by hop.

registry (Result, the checks), inventory (the one fetch) and probes (the end-to-end requests), one module per
hop or group of hops, and verdict (ordering, first broken hop, table, record). The hop modules are imported in
request order: that is the order the checks run and their results are listed.
"""

from vpclink_runbooks.checks.facts import serving_targets
from vpclink_runbooks.checks.inventory import PERMISSIONS, Inventory, fetch
from vpclink_runbooks.checks.probes import PROBE_PATH
from vpclink_runbooks.checks.registry import (
    CHECKS,
    DECLARED,
    HOPS,
    REPAIRED_BY,
    SEVERITIES,
    Declaration,
    Result,
    UndeclaredCheck,
    check,
    declaration,
)

# isort: split
from vpclink_runbooks.checks.api import integration_reaches_listener, mapping_points_at_stage, stage_deployed_with_link

# isort: split
from vpclink_runbooks.checks.vpc_link import vpc_link_available

# isort: split
from vpclink_runbooks.checks.nlb import listener_forwards_to_host_port, nlb_active_internal

# isort: split
from vpclink_runbooks.checks.target_group import target_group_health_check, target_group_port

# isort: split
from vpclink_runbooks.checks.targets import targets_healthy

# isort: split
from vpclink_runbooks.checks.task_definition import task_definition_ports

# isort: split
from vpclink_runbooks.checks.security_group import security_group_admits_nlb

# isort: split
from vpclink_runbooks.checks.smells import (
    host_ports_beyond_params,
    internet_facing_load_balancers,
    security_group_smells,
)

# isort: split
from vpclink_runbooks.checks.service import UNASSUMABLE_ROLE, service_running, tasks_start

# isort: split
from vpclink_runbooks.checks.endpoint import end_to_end

# isort: split
from vpclink_runbooks.checks.verdict import Verdict, failed, first_broken_hop, record, run_checks, table, verdict

__all__ = [
    "CHECKS", "DECLARED", "HOPS", "PERMISSIONS", "PROBE_PATH", "REPAIRED_BY", "SEVERITIES", "UNASSUMABLE_ROLE",
    "Declaration", "Inventory", "Result", "UndeclaredCheck", "Verdict", "check", "declaration", "end_to_end",
    "failed", "fetch", "first_broken_hop", "host_ports_beyond_params", "internet_facing_load_balancers",
    "integration_reaches_listener", "listener_forwards_to_host_port", "mapping_points_at_stage",
    "nlb_active_internal", "record", "run_checks", "security_group_admits_nlb", "security_group_smells",
    "service_running", "serving_targets", "stage_deployed_with_link", "table", "target_group_health_check",
    "target_group_port", "targets_healthy", "task_definition_ports", "tasks_start", "verdict", "vpc_link_available",
]
