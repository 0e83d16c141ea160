"""ELBv2 behaviour that moto 5.2 lacks.

ELBv2
- NLB ARNs are `loadbalancer/net/...` (moto: `app`), so listener ARNs are `listener/net/...`.
- Load balancers stay `provisioning` for `delays.nlb_provisioning` s (moto: active on first read).
- NLBs get one network interface per subnet ("ELB net/NAME/ID"), in the NLB's security groups; after a delete
  AWS releases them a little later, here after `delays.target_healthy` s, so deleting their security group
  meanwhile fails with DependencyViolation (moto: no interfaces).
- Security groups on an NLB (AWS, since 2023): SetSecurityGroups on an NLB created without any fails with
  InvalidConfigurationRequest (moto: sets them); an NLB created with groups reports
  EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic ("on" by default; SetSecurityGroups sets it) (moto: never).
- set_subnets accepts a single subnet for an NLB (moto: 2+ AZs, the ALB rule).
- Deleting a load balancer a VPC link targets fails with ResourceInUse (moto: deletes it).
- Deleting a load balancer detaches it from its target groups (moto: dangling references); so does
  deleting or modifying the last listener that forwards to one.
- An instance launched in a VPC subnet without security groups gets the VPC's default group (moto: none).
- Every network interface has a private DNS name (moto: only with DNS hostnames on, and its ECS then cannot
  start awsvpc tasks in any other VPC).
- ModifyTargetGroup keeps Matcher for a TCP group's HTTP(S) health check (moto: only for HTTP(S) groups).
- Target groups key targets by (Id, Port) as AWS does (moto: by Id only, so one port per instance).
- Target health is what the health check would see (moto: always healthy). Not registered ->
  `unused`/Target.NotRegistered; deregistered -> `draining`/Target.DeregistrationInProgress for
  `delays.target_healthy` s; instance stopped or terminated -> `unused`/Target.InvalidState; no listener of a
  load balancer forwards to the group, or the target's AZ is not enabled -> `unused`/Target.NotInUse; while the
  NLB provisions -> `initial`/Elb.RegistrationInProgress, then `initial`/Elb.InitialHealthChecking for
  `delays.target_healthy` s from the later of its registration and the load balancer becoming active (AWS: "It
  can take a few minutes for the registration process to complete and health checks to start"); then the check
  itself on HealthCheckPort ("traffic-port" = the target's port):
  the target's security groups must admit it from the load balancer's nodes or groups (network.lb_admitted),
  a task's stand-in must listen there (standins), TCP connects, HTTP/HTTPS GETs HealthCheckPath and matches
  the Matcher (default 200-399). An NLB reports every failure as `unhealthy`/Target.FailedHealthChecks; an
  ALB's group reports Target.Timeout (dropped by a group) and Target.ResponseCodeMismatch.
- Routing (`choose_target`, used by the data plane): healthy targets in the client's zone, any enabled zone
  with cross-zone on (target group attribute, else the load balancer's; NLB default off, ALB always on); DNS
  answers only zones with a healthy target; with no healthy target in scope the node fails open to all its
  in-use targets.
- Gaps: health is evaluated on read, not on HealthCheckIntervalSeconds / thresholds; a plain EC2 instance
  that is not an ECS container instance is assumed to answer (its software is not emulated); stand-ins speak
  no TLS, so an HTTPS check is sent as HTTP; every node address must be admitted (no per-node health).
"""

from __future__ import annotations

import http.client
import itertools
import socket
from typing import Any

from . import ecs_scheduler, elbv2_groups, network, standins
from .base import _CFG, LOCK, _apigw, _ec2, _ecs, _elbv2, _now, _wrap


def _lb_active(lb: Any) -> bool:
    lb.activate()
    return lb.state == "active"


def _set_subnets(orig: Any) -> Any:
    def f(self: Any, arn: str, subnets: list[str], subnet_mappings: list[dict[str, Any]]) -> Any:
        lb = self.load_balancers.get(arn)
        ids = [*subnets, *(m_["SubnetId"] for m_ in subnet_mappings)]
        if lb is not None and lb.type == "network" and len(ids) == 1:
            lb.subnets = [self.ec2_backend.get_subnet(ids[0])]
            return lb.availability_zones
        return orig(self, arn, subnets, subnet_mappings)
    return f


def _create_load_balancer(orig: Any) -> Any:
    def f(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        with LOCK:
            lb = orig(self, name, *args, **kwargs)
            lb._sbx_created = _now()
            if lb.type == "network" and ":loadbalancer/app/" in lb.arn:
                old = lb.arn
                new = old.replace(":loadbalancer/app/", ":loadbalancer/net/")
                self.load_balancers.pop(old, None)
                lb.arn = new
                self.load_balancers[new] = lb
                tags = self.tagging_service.list_tags_for_resource(old).get("Tags", [])
                self.tagging_service.delete_all_tags_for_resource(old)
                if tags:
                    self.tagging_service.tag_resource(new, tags)
            if lb.type == "network":
                if lb.security_groups:
                    lb.enforce_security_group_inbound_rules_on_private_link_traffic = "on"
                ec2 = self.ec2_backend
                lb._sbx_enis = []
                lb_id = lb.arn.split("/")[-1]
                for subnet in lb.subnets:
                    eni = ec2.create_network_interface(
                        subnet=subnet,
                        private_ip_address=None,
                        group_ids=list(lb.security_groups or []),
                        description=f"ELB net/{lb.name}/{lb_id}",
                    )
                    eni.status = "in-use"
                    eni.interface_type = "network_load_balancer"
                    lb._sbx_enis.append(eni.id)
            return lb

    return f


def _activate(orig: Any) -> Any:
    def f(self: Any) -> None:
        created = getattr(self, "_sbx_created", None)
        if self.state == "provisioning" and (
            created is None or _now() - created >= _CFG.nlb_provisioning
        ):
            self.state = "active"
            # when it became active (not when this read noticed): targets' health checks start from there
            self._sbx_active_at = created + _CFG.nlb_provisioning if created is not None else 0.0

    return f


def _delete_load_balancer(orig: Any) -> Any:
    from moto.elbv2.exceptions import ELBClientError

    def f(self: Any, arn: str) -> None:
        with LOCK:
            for link in _apigw(self.account_id, self.region_name).vpc_links.values():
                if arn in (link.target_arns or []):
                    raise ELBClientError(
                        "ResourceInUse",
                        f"Load balancer '{arn}' cannot be deleted because it is currently associated "
                        f"with another service (VPC link '{link.id}')",
                    )
            lb = self.load_balancers.get(arn)
            orig(self, arn)
            if lb is None:
                return
            for tg in self.target_groups.values():
                while arn in tg.load_balancer_arns:
                    tg.load_balancer_arns.remove(arn)
            ec2 = self.ec2_backend
            for eni_id in getattr(lb, "_sbx_enis", []):
                if eni_id in ec2.enis:
                    ec2.enis[eni_id]._sbx_release_at = _now() + _CFG.target_healthy

    return f


def _tg_register(orig: Any) -> Any:
    from moto.elbv2 import models as m

    def f(self: Any, targets: list[dict[str, Any]]) -> None:
        with LOCK:
            for target in targets:
                inst = self.ec2_backend.get_instance_by_id(target["Id"])
                if inst is not None and inst.state != "running":
                    raise m.TargetNotRunning(instance_id=target["Id"])
                tg_add(self, target["Id"], int(target.get("Port") or self.port), _now())

    return f


def _tg_deregister(orig: Any) -> Any:
    def f(self: Any, targets: list[dict[str, Any]]) -> None:
        with LOCK:
            for target in targets:
                if target.get("Port"):
                    keys = [tkey(target["Id"], target["Port"])]
                else:
                    keys = [k for k, v in self.targets.items() if v["Id"] == target["Id"]]
                for k in keys:
                    tg_remove(self, k)

    return f


def _tg_deregister_terminated(orig: Any) -> Any:
    def f(self: Any, instance_ids: list[str]) -> None:
        for k, v in list(self.targets.items()):
            if v["Id"] in instance_ids:
                tg_remove(self, k)

    return f


def _tg_health_for(orig: Any) -> Any:
    def f(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
        return _health(self, target, ec2_backend)

    return f


def _describe_target_health(orig: Any) -> Any:
    from moto.elbv2 import models as m

    def f(self: Any, target_group_arn: str, targets: list[dict[str, Any]]) -> Any:
        with LOCK:
            tg = self.target_groups.get(target_group_arn)
            if tg is None:
                raise m.TargetGroupNotFoundError()
            ecs_scheduler.reconcile(_ecs(self.account_id, self.region_name))
            if targets:
                out = []
                for t in targets:
                    if t.get("Port"):
                        out.append(_health(tg, t, self.ec2_backend))
                    else:
                        regs = [v for v in tg.targets.values() if v["Id"] == t["Id"]]
                        out.extend(_health(tg, r, self.ec2_backend) for r in regs)
                        if not regs:
                            out.append(_health(tg, t, self.ec2_backend))
                return out
            listed = list(tg.targets.values())
            now = _now()
            listed += [t for t, until in _draining(tg).values() if until > now]
            return [_health(tg, t, self.ec2_backend) for t in listed]

    return f


def _call_action(orig: Any) -> Any:
    def f(self: Any) -> Any:
        with LOCK:
            try:
                ecs_scheduler.reconcile(_ecs(self.current_account, self.region))
            except Exception:  # noqa: BLE001 - never break the ELB API on scheduler trouble
                pass
            return orig(self)

    return f


def _resync_after(orig: Any) -> Any:
    # moto never detaches a target group from its NLB when the last listener forwarding to it is
    # deleted or modified; AWS does, and the runbook relies on it to delete stale target groups.
    def f(self: Any, *args: Any, **kwargs: Any) -> Any:
        with LOCK:
            result = orig(self, *args, **kwargs)
            _resync_target_group_load_balancers(self)
            return result

    return f


def _modify_target_group(orig: Any) -> Any:
    # moto keeps a Matcher only for an HTTP(S) target group; AWS keeps it for an NLB's HTTP(S) health check.
    def f(self: Any, arn: str, *args: Any, **kwargs: Any) -> Any:
        with LOCK:
            tg = orig(self, arn, *args, **kwargs)
            codes = kwargs.get("http_codes", args[7] if len(args) > 7 else None)
            if codes is not None and (tg.health_check_protocol or "").upper() in ("HTTP", "HTTPS"):
                if not isinstance(getattr(tg, "matcher", None), dict):
                    tg.matcher = {}
                tg.matcher["HttpCode"] = codes
            return tg

    return f


def _install_elbv2() -> None:
    from moto.elbv2 import models as m
    from moto.elbv2.responses import ELBV2Response

    _wrap(m.ELBv2Backend, "modify_target_group", "elbv2.modify_target_group", _modify_target_group)
    _wrap(m.ELBv2Backend, "delete_listener", "elbv2.delete_listener", _resync_after)
    _wrap(m.ELBv2Backend, "modify_listener", "elbv2.modify_listener", _resync_after)
    _wrap(m.ELBv2Backend, "create_load_balancer", "elbv2.create_load_balancer", _create_load_balancer)
    _wrap(m.ELBv2Backend, "delete_load_balancer", "elbv2.delete_load_balancer", _delete_load_balancer)
    _wrap(m.ELBv2Backend, "set_subnets", "elbv2.set_subnets", _set_subnets)
    elbv2_groups.install(m.ELBv2Backend, ELBV2Response)
    _wrap(m.ELBv2Backend, "describe_target_health", "elbv2.describe_target_health", _describe_target_health)
    _wrap(m.FakeLoadBalancer, "activate", "elbv2.activate", _activate)
    _wrap(m.FakeTargetGroup, "register", "elbv2.tg.register", _tg_register)
    _wrap(m.FakeTargetGroup, "deregister", "elbv2.tg.deregister", _tg_deregister)
    _wrap(
        m.FakeTargetGroup,
        "deregister_terminated_instances",
        "elbv2.tg.deregister_terminated",
        _tg_deregister_terminated,
    )
    _wrap(m.FakeTargetGroup, "health_for", "elbv2.tg.health_for", _tg_health_for)
    _wrap(ELBV2Response, "call_action", "elbv2.call_action", _call_action)


def _resync_target_group_load_balancers(backend: Any) -> None:
    """Recompute each target group's LoadBalancerArns from the listeners that forward to it."""
    refs: dict[str, list[str]] = {}
    for lb in backend.load_balancers.values():
        for listener in lb.listeners.values():
            actions = list(listener.default_actions)
            for rule in getattr(listener, "_rules", {}).values():
                actions += list(getattr(rule, "actions", []))
            for action in actions:
                data = getattr(action, "data", {}) or {}
                arns = [data.get("TargetGroupArn")] + [
                    g.get("TargetGroupArn") for g in data.get("ForwardConfig", {}).get("TargetGroups", [])]
                for arn in filter(None, arns):
                    if lb.arn not in refs.setdefault(arn, []):
                        refs[arn].append(lb.arn)
    for tg in backend.target_groups.values():
        tg.load_balancer_arns = refs.get(tg.arn, [])


def tkey(target_id: str, port: Any) -> str:
    return f"{target_id}:{int(port)}"


def _draining(tg: Any) -> dict[str, Any]:
    if not hasattr(tg, "_sbx_draining"):
        tg._sbx_draining = {}
    return tg._sbx_draining


def tg_add(tg: Any, target_id: str, port: int, registered_at: float) -> None:
    key = tkey(target_id, port)
    existing = tg.targets.get(key)
    tg.targets[key] = {
        "Id": target_id,
        "Port": int(port),
        "_registered": existing["_registered"] if existing else registered_at,
    }
    _draining(tg).pop(key, None)


def tg_remove(tg: Any, key: str) -> bool:
    t = tg.targets.pop(key, None)
    if t is None:
        return False
    _draining(tg)[key] = ({"Id": t["Id"], "Port": t["Port"], "_draining": True}, _now() + _CFG.target_healthy)
    return True


def _target_az(ec2: Any, tid: str) -> str | None:
    if tid.startswith("i-"):
        inst = ec2.get_instance_by_id(tid)
        return inst.availability_zone if inst is not None else None
    eni = network.eni_for_ip(ec2, tid)
    if eni is not None:
        return eni.subnet.availability_zone
    for subnet in ec2.get_all_subnets():
        if network.cidr_contains(subnet.cidr_block, tid):
            return subnet.availability_zone
    return None


def _is_container_instance(account_id: str, region: str, instance_id: str) -> bool:
    ecs = _ecs(account_id, region)
    return any(ci.ec2_instance_id == instance_id for cis in ecs.container_instances.values() for ci in cis.values())


def _codes(matcher: str) -> list[tuple[int, int]]:
    out = []
    for part in (matcher or "200-399").split(","):
        low, _, high = part.strip().partition("-")
        if low.strip().isdigit():
            out.append((int(low), int(high or low)))
    return out


def _check(tg: Any, lbs: list[Any], tid: str, port: int) -> tuple[str, str | None, str | None]:
    """What the load balancers' health checks see: network admission, something listening, the HTTP answer."""
    hc = str(tg.health_check_port or "traffic-port")
    hc_port = port if hc == "traffic-port" else int(hc)
    failed = ("unhealthy", "Target.FailedHealthChecks", "Health checks failed")
    # ResponseCodeMismatch / Timeout are ALB (and GWLB) codes; an NLB reports every failure as FailedHealthChecks.
    alb = any(lb.type == "application" for lb in lbs)
    for lb in lbs:
        if network.lb_admitted(tg.account_id, tg.region_name, lb, tid, hc_port):
            return ("unhealthy", "Target.Timeout", "Request timed out") if alb else failed
    if tid.startswith("i-") and not _is_container_instance(tg.account_id, tg.region_name, tid):
        return ("healthy", None, None)  # software on a plain instance is not emulated: assume it answers
    standin = standins.for_target(tg.account_id, tg.region_name, tid, hc_port)
    if standin is None:
        return failed
    proto = (tg.health_check_protocol or tg.protocol or "TCP").upper()
    timeout = min(float(tg.health_check_timeout_seconds or 10), 2.0)
    if proto in ("HTTP", "HTTPS"):
        # Stand-ins speak plain HTTP: an HTTPS check is sent as HTTP (no TLS in the sandbox).
        conn = http.client.HTTPConnection(*standin.address, timeout=timeout)
        try:
            conn.request("GET", tg.health_check_path or "/")
            code = conn.getresponse().status
        except TimeoutError:
            return ("unhealthy", "Target.Timeout", "Request timed out") if alb else failed
        except OSError:
            return failed
        finally:
            conn.close()
        matcher = (getattr(tg, "matcher", None) or {}).get("HttpCode") or "200-399"
        if not any(low <= code <= high for low, high in _codes(matcher)):
            if alb:
                return ("unhealthy", "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{code}]")
            return failed
        return ("healthy", None, None)
    try:
        socket.create_connection(standin.address, timeout=timeout).close()
    except OSError:
        return failed
    return ("healthy", None, None)


def _evaluate(tg: Any, tid: str, port: int) -> tuple[str, str | None, str | None]:
    """(state, reason, description) DescribeTargetHealth shows for target (tid, port) now (under LOCK)."""
    key = tkey(tid, port)
    t = tg.targets.get(key)
    if t is None:
        drain = _draining(tg).get(key)
        if drain and drain[1] > _now():
            return ("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
        return ("unused", "Target.NotRegistered", "Target is not registered to the target group")
    ec2 = _ec2(tg.account_id, tg.region_name)
    inst = ec2.get_instance_by_id(tid) if tid.startswith("i-") else None
    if inst is not None and inst.state != "running":
        return ("unused", "Target.InvalidState", "Target is in the stopped or terminated state")
    elb = _elbv2(tg.account_id, tg.region_name)
    lbs = [elb.load_balancers[a] for a in tg.load_balancer_arns if a in elb.load_balancers]
    if not lbs:
        return ("unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer")
    az = _target_az(ec2, tid)
    if az is not None and az not in {s.availability_zone for lb in lbs for s in lb.subnets}:
        return ("unused", "Target.NotInUse",
                "Target is in an Availability Zone that is not enabled for the load balancer")
    if not all(_lb_active(lb) for lb in lbs):
        return ("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
    # health checks start once the target is registered and its load balancers are active
    checking_since = max([t["_registered"], *(getattr(lb, "_sbx_active_at", 0.0) for lb in lbs)])
    if _now() - checking_since < _CFG.target_healthy:
        return ("initial", "Elb.InitialHealthChecking", "Initial health checking in progress")
    standins.sync(tg.account_id, tg.region_name)
    return _check(tg, lbs, tid, port)


def _health(tg: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
    from moto.elbv2.models import FakeHealthStatus

    tid = target["Id"]
    port = int(target.get("Port") or tg.port or 0)
    state, reason, desc = _evaluate(tg, tid, port)
    return FakeHealthStatus(tid, port, tg.health_check_port, state, reason, desc)


def _split_key(target_key: Any) -> tuple[str, int]:
    if isinstance(target_key, dict):
        return target_key["Id"], int(target_key["Port"])
    if isinstance(target_key, str):
        tid, _, port = target_key.rpartition(":")
        return tid, int(port)
    return str(target_key[0]), int(target_key[1])


def target_health(account_id: str, region: str, tg: Any, target_key: Any) -> tuple[str, str | None]:
    """(state, reason) DescribeTargetHealth shows for a target ("id:port", (id, port) or a target dict)."""
    with LOCK:
        tid, port = _split_key(target_key)
        state, reason, _ = _evaluate(tg, tid, port)
        return state, reason


def _cross_zone(lb: Any, tg: Any) -> bool:
    value = str((getattr(tg, "attributes", None) or {}).get("load_balancing.cross_zone.enabled",
                                                             "use_load_balancer_configuration")).lower()
    if value in ("true", "false"):
        return value == "true"
    if lb.type == "application":
        return True  # an ALB always balances across zones at the load balancer level
    return str((getattr(lb, "attrs", None) or {}).get("load_balancing.cross_zone.enabled", "false")).lower() == "true"


_TURN = itertools.count()


def choose_target(account_id: str, region: str, lb: Any, tg: Any, client_az: str | None) -> Any:
    """The registered target the load balancer sends a new connection to, or None when it has none.

    Healthy targets in the client's zone (any enabled zone with cross-zone on); with client_az None, DNS
    answers only zones holding a healthy target (all zones when none does). When no target in that scope is
    healthy the node fails open to every in-use target in it (AWS: routing failover, default threshold 1)."""
    with LOCK:
        ec2 = _ec2(account_id, region)
        zones = {s.availability_zone for s in lb.subnets}
        seen = []
        for t in list(tg.targets.values()):
            state, _, _ = _evaluate(tg, t["Id"], int(t["Port"]))
            if state in ("unused", "draining"):
                continue  # never in use: not registered for this load balancer's zones, stopped, or leaving
            seen.append((t, state, _target_az(ec2, t["Id"])))
        if not seen:
            return None
        if not _cross_zone(lb, tg):
            if client_az is None:
                healthy_zones = sorted({az for _, st, az in seen if st == "healthy" and az in zones})
                pool = healthy_zones or sorted(zones)
                client_az = pool[next(_TURN) % len(pool)] if pool else None
            seen = [x for x in seen if x[2] == client_az or x[2] is None]
            if not seen:
                return None
        healthy = [t for t, st, _ in seen if st == "healthy"]
        pool = healthy or [t for t, _, _ in seen]
        return pool[next(_TURN) % len(pool)]
