"""The data plane behind an integration: VPC link -> load balancer -> listener -> target group -> a target the
load balancer would choose -> its security groups -> the task's stand-in, and the HTTP request sent to it.

Health, choice and security-group admission are the emulator's own (`elbv2.choose_target`,
`network.lb_admitted`, `standins.for_target`); this module only walks the chain and says which hop stopped.
The request's zone is left to `choose_target` (client_az None: the zones the load balancer's DNS answers).
"""

from __future__ import annotations

import fnmatch
import http.client
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .base import _apigw, _ec2, _ecs, _elbv2, _lb_active
from .dataplane import SETTINGS, Answer, Fail, Trace, integration_path

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length",
               "proxy-connection"}


@dataclass
class Forward:
    """Where an integration request goes: a stand-in's address, a drop (no answer ever comes) or an
    answer the load balancer itself gives (an ALB fixed-response)."""

    hop: str
    timeout_ms: int
    host_header: str = ""
    path: str = "/"
    method: str | None = None  # the integration's httpMethod when not ANY
    address: tuple[str, int] | None = None
    drop: str | None = None
    fixed: tuple[int, str, str] | None = None  # status, content type, body


def _link(account_id: str, region: str, link_id: str) -> tuple[str, Any] | None:
    from moto.apigatewayv2.models import apigatewayv2_backends

    v1 = _apigw(account_id, region).vpc_links.get(link_id)
    if v1 is not None:
        return "V1", v1
    v2 = apigatewayv2_backends[account_id][region].vpc_links.get(link_id)
    return ("V2", v2) if v2 is not None else None


def _link_status(version: str, link: Any) -> str:
    # to_json advances the lazy PENDING -> AVAILABLE transition the control plane shows.
    d = link.to_json()
    return d.get("status") if version == "V1" else d.get("vpcLinkStatus", "AVAILABLE")


def _link_admitted(ec2: Any, lb: Any, link: Any, port: int) -> bool:
    """Whether the load balancer's groups admit TCP `port` from the V2 link (its groups or its interfaces)."""
    from .network import group_admits

    ips = [e.private_ip_address for e in (ec2.enis.get(i) for i in getattr(link, "_sbx_enis", [])) if e]
    return any(group_admits(ec2, g, port, set(link.sg_ids or []), ips) for g in lb.security_groups)


def _listener_target_group(listener: Any, path: str, host: str) -> tuple[str | None, tuple | None]:
    """(target group ARN, fixed response) of the rule that takes the request: an ALB's rules by priority
    (path-pattern / host-header), else the default action."""
    rules = sorted(getattr(listener, "_non_default_rules", {}).values(), key=lambda r: int(r.priority))
    actions = list(listener.default_actions)
    for rule in rules:
        if all(_condition(c, path, host) for c in rule.conditions):
            actions = list(rule.actions)
            break
    for action in actions:
        data = getattr(action, "data", {}) or {}
        if data.get("Type") == "forward":
            arn = data.get("TargetGroupArn")
            groups = data.get("ForwardConfig", {}).get("TargetGroups", [])
            if not arn and groups:
                arn = max(groups, key=lambda g: int(g.get("Weight", 1)))["TargetGroupArn"]
            return arn, None
        if data.get("Type") == "fixed-response":
            cfg = data.get("FixedResponseConfig", {})
            return None, (int(cfg.get("StatusCode", 200)), cfg.get("ContentType", "text/plain"),
                          cfg.get("MessageBody", ""))
    return None, None


def _condition(cond: dict, path: str, host: str) -> bool:
    field_ = cond.get("Field")
    values = cond.get("Values") or (cond.get("PathPatternConfig") or cond.get("HostHeaderConfig") or {}).get(
        "Values", [])
    if field_ == "path-pattern":
        return any(fnmatch.fnmatchcase(path, v) for v in values)
    if field_ == "host-header":
        return any(fnmatch.fnmatchcase(host.lower(), v.lower()) for v in values)
    return False


def _target_key(target: Any) -> tuple[str, int]:
    if isinstance(target, dict):
        return target["Id"], int(target["Port"])
    return getattr(target, "Id", None) or target[0], int(getattr(target, "Port", None) or target[1])


def _choose(account_id: str, region: str, lb: Any, tg: Any, client_az: str | None) -> Any:
    from . import elbv2

    return elbv2.choose_target(account_id, region, lb, tg, client_az)


def _lb_groups_refuse(account_id: str, region: str, ec2: Any, version: str, lb: Any, link: Any,
                      port: int) -> str | None:
    """Why the load balancer's own groups drop the link's traffic on `port`, or None when they let it in."""
    if not lb.security_groups:
        return None
    if version == "V1" and _privatelink_refused(account_id, region, ec2, lb, port):
        return (f"the NLB's groups {', '.join(lb.security_groups)} evaluate inbound rules on PrivateLink traffic "
                "(EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic on) and none admits TCP "
                f"{port} from the NLB's addresses, where it arrives")
    if version == "V2" and not _link_admitted(ec2, lb, link, port):
        return f"the load balancer's groups {', '.join(lb.security_groups)} admit no TCP {port} from VPC link {link.id}"
    return None


def _privatelink_refused(account_id: str, region: str, ec2: Any, lb: Any, port: int) -> bool:
    """A V1 link reaches its NLB over PrivateLink. With inbound-rule evaluation for PrivateLink traffic on (AWS's
    default for an NLB with groups) the NLB's inbound rules judge that traffic; it arrives from the NLB's own
    private addresses (API Gateway's endpoint is not in the VPC), so a rule must admit those addresses."""
    from .network import group_admits, lb_node_ips

    if getattr(lb, "enforce_security_group_inbound_rules_on_private_link_traffic", "on") == "off":
        return False
    ips = lb_node_ips(account_id, region, lb) or [s.cidr_block for s in lb.subnets]
    return not any(group_admits(ec2, g, port, set(), ips) for g in lb.security_groups)


def _admitted(account_id: str, region: str, lb: Any, target_id: str, port: int) -> str | None:
    from . import network

    return network.lb_admitted(account_id, region, lb, target_id, port)


def _standin(account_id: str, region: str, target_id: str, port: int) -> Any:
    from . import standins

    standins.sync(account_id, region)
    return standins.for_target(account_id, region, target_id, port)


def forward_for(account_id: str, region: str, integ: dict, connection_id: str, uri: str, params: dict[str, str],
                *, from_variable: bool, trace: Trace) -> Forward:
    """Walk VPC link -> load balancer -> target -> stand-in for one integration (under base.LOCK)."""
    from . import ecs_scheduler

    timeout_ms = int(integ.get("timeoutInMillis") or 29000)
    parts = urlsplit(uri)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = integration_path(parts.path or "/", integ, params)
    method = None if (integ.get("httpMethod") or "ANY") == "ANY" else integ["httpMethod"]
    trace.log(f"Endpoint request URI: {parts.scheme}://{parts.hostname}:{port}{path}")
    found = _link(account_id, region, connection_id)
    if found is None:
        raise Fail("API_CONFIGURATION_ERROR", "stage" if from_variable else "integration",
                   f"Invalid VPC link {connection_id}: no such VPC link")
    version, link = found
    status = _link_status(version, link)
    if status != "AVAILABLE":
        raise Fail("API_CONFIGURATION_ERROR", "vpc_link", f"VPC link {connection_id} is {status}")
    lb_arn = (link.target_arns or [None])[0] if version == "V1" else integ.get("integrationTarget")
    elb = _elbv2(account_id, region)
    lb = elb.load_balancers.get(lb_arn) if lb_arn else None
    if lb is None:
        raise Fail("API_CONFIGURATION_ERROR", "vpc_link" if version == "V1" else "integration",
                   f"the VPC link's load balancer {lb_arn or '(none: no integrationTarget)'} does not exist")
    if not _lb_active(lb):
        raise Fail("INTEGRATION_FAILURE", "nlb", f"load balancer {lb.name} is {lb.state}")
    ec2 = _ec2(account_id, region)
    refused = _lb_groups_refuse(account_id, region, ec2, version, lb, link, port)
    if refused:
        return Forward("security_group", timeout_ms, drop=refused)
    listener = next((ls for ls in lb.listeners.values() if int(ls.port) == port), None)
    if listener is None:
        raise Fail("INTEGRATION_FAILURE", "listener", f"load balancer {lb.name} has no listener on port {port}")
    tg_arn, fixed = _listener_target_group(listener, path, parts.hostname or "")
    if fixed is not None:
        return Forward("listener", timeout_ms, fixed=fixed)
    tg = elb.target_groups.get(tg_arn) if tg_arn else None
    if tg is None:
        raise Fail("INTEGRATION_FAILURE", "listener", f"listener {port} forwards to no target group")
    ecs_scheduler.reconcile(_ecs(account_id, region))
    target = _choose(account_id, region, lb, tg, None)
    if target is None:
        hop = "nlb" if tg.targets else "targets"
        raise Fail("INTEGRATION_FAILURE", hop, f"load balancer {lb.name} has no target in use in an enabled zone "
                   f"for target group {tg.name}" if tg.targets else f"target group {tg.name} has no registered target")
    target_id, target_port = _target_key(target)
    inst = ec2.get_instance_by_id(target_id) if target_id.startswith("i-") else None
    if inst is not None and inst.state != "running":
        return Forward("targets", timeout_ms, drop=f"instance {target_id} is {inst.state}")
    reason = _admitted(account_id, region, lb, target_id, target_port)
    if reason:
        return Forward("security_group", timeout_ms, drop=reason)
    standin = _standin(account_id, region, target_id, target_port)
    if standin is None:
        raise Fail("INTEGRATION_FAILURE", "task_definition",
                   f"nothing listens on {target_id}:{target_port} (no running task holds that port)")
    trace.log(f"Sending request to {target_id}:{target_port} (task {standin.task_id})")
    return Forward("service", timeout_ms, host_header=parts.netloc, path=path, method=method,
                   address=tuple(standin.address))


def send(fwd: Forward, verb: str, query: str, headers: dict[str, str], body: bytes, trace: Trace) -> Answer:
    """Send the request where `forward_for` said (outside base.LOCK); raises Fail when nothing answers."""
    if fwd.drop is not None:
        # Dropped packets: nothing answers until the integration gives up (capped, see dataplane's docstring).
        time.sleep(min(fwd.timeout_ms / 1000, SETTINGS.drop_wait))
        raise Fail("INTEGRATION_TIMEOUT", fwd.hop, fwd.drop)
    if fwd.fixed is not None:
        status, ctype, text = fwd.fixed
        return Answer(status, {"Content-Type": ctype}, text.encode(), fwd.hop)
    assert fwd.address is not None
    out = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP and k.lower() != "host"}
    out["Host"] = fwd.host_header
    target = fwd.path + (f"?{query}" if query else "")
    conn = http.client.HTTPConnection(fwd.address[0], fwd.address[1], timeout=fwd.timeout_ms / 1000)
    try:
        conn.request(fwd.method or verb, target, body=body or None, headers=out)
        resp = conn.getresponse()
        data = resp.read()
        answer_headers = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP}
    except TimeoutError:
        raise Fail("INTEGRATION_TIMEOUT", "service", f"the task did not answer within {fwd.timeout_ms} ms") from None
    except OSError as exc:
        raise Fail("INTEGRATION_FAILURE", "service", f"connection to the task failed ({exc})") from None
    finally:
        conn.close()
    trace.log(f"Received response. Status: {resp.status}, Integration latency: n/a")
    return Answer(resp.status, answer_headers, data, "service")

