"""AWS behaviour that moto 5.2 lacks, added in-process to the embedded moto server.

Everything here wraps moto's backend/response classes; clients still only talk HTTP through
boto3. State changes are lazy and time based (evaluated when a request reads the state), under
one module-level re-entrant lock (`LOCK`). The gaps filled, one line each:

ELBv2
- NLB ARNs are `loadbalancer/net/...` (moto: `app`), so listener ARNs are `listener/net/...`.
- Load balancers stay `provisioning` for `delays.nlb_provisioning` s (moto: active on first read).
- NLBs get one network interface per subnet ("ELB net/NAME/ID"), removed on delete (moto: none).
- set_subnets accepts a single subnet for an NLB (moto: 2+ AZs, the ALB rule).
- Deleting a load balancer a VPC link targets fails with ResourceInUse (moto: deletes it).
- Deleting a load balancer detaches it from its target groups (moto: dangling references); so does
  deleting or modifying the last listener that forwards to one.
- An instance launched in a VPC subnet without security groups gets the VPC's default group (moto: none).
- Every network interface has a private DNS name (moto: only with DNS hostnames on, and its ECS then cannot
  start awsvpc tasks in any other VPC).
- Target groups key targets by (Id, Port) as AWS does (moto: by Id only, so one port per instance).
- Target health is real: `initial` for `delays.target_healthy` s (and while the NLB provisions),
  then `healthy`; `unhealthy` (Target.FailedHealthChecks) when the instance is not running or,
  for an ECS container instance, no running task listens on that host port; `unused`
  (Target.NotInUse) without a load balancer or when the instance's AZ is not enabled on it;
  deregistered targets show `draining` for `delays.target_healthy` s (moto: always healthy).
API Gateway (V1)
- VPC links are PENDING ("VPC link is provisioning ENIs") for `delays.vpc_link_pending` s, then
  AVAILABLE; `set_vpc_link_status` injects e.g. FAILED (moto: AVAILABLE at once, no message).
- put_integration keeps connectionId and integrationTarget (moto drops them); get_integration and
  get_method's methodIntegration return them.
- update_integration (moto: not implemented, HTTP 500) supports replace on /uri, /connectionId,
  /connectionType, /httpMethod, /timeoutInMillis, /passthroughBehavior and /requestParameters/*.
API Gateway V2 (VPC link V2)
- VPC links V2 are PENDING for `delays.vpc_link_pending` s, then AVAILABLE; `set_vpc_link_v2_status` injects
  FAILED/INACTIVE (moto: AVAILABLE at once). A link gets one network interface per subnet in its security
  groups, removed on delete (moto: none).
EC2
- Deleting a security group that a network interface uses, or that another group's rule references, fails
  with DependencyViolation (moto: deletes it).
ECS (awsvpc)
- awsvpc tasks (EC2 or FARGATE) get a network interface with an address from the subnet of their AZ (moto: a
  random address in the first subnet), deleted when the task stops; running tasks are registered as IP
  targets (private IP + containerPort); an IP target is healthy only while a running task has that IP.
  Fargate tasks are placed on no instance, spread over the service's subnets.
ECS
- A service scheduler (moto never starts service tasks): tasks are placed on ACTIVE, connected
  container instances honouring fixed host ports (reserved agent ports, ports of other tasks),
  CPU/memory and the distinctInstance constraint, spread across AZs then instances; dynamic
  host ports (hostPort 0/absent, bridge) come from 32768-60999. Unplaceable tasks produce the ECS
  event "... is already using a port required by your task." once per distinct situation.
- Tasks go PENDING -> RUNNING after `delays.task_start` s, then are registered in the service's
  target groups (instance id + the host port mapped to the load balancer's containerPort);
  stopped tasks are deregistered.
- Rolling deployments honour maximumPercent / minimumHealthyPercent (defaults 200/100), scale
  up and down, stop everything on delete_service; deployments[] and running/pending counts are
  real, so the `services_stable` waiter works; "has reached a steady state." events.
- create_service refuses a target group with no load balancer (as AWS does).
- update_service stores the resolved task definition ARN (moto stores the string as given).
- list_tasks filters by serviceName and defaults desiredStatus to RUNNING (as AWS does).
- Tasks started with run_task/start_task keep RUNNING (moto walks them to STOPPED as they are
  described); container instances show real running/pending counts, remaining PORTS/CPU/MEMORY,
  and agentConnected false while their EC2 instance is not running (their targets go unhealthy).
IAM (when enforcement is on: POST /moto-api/reset-auth)
- API Gateway requests are authorized as apigateway:<HTTP verb> (moto: apigateway:<Operation>), and
  bodiless GET/DELETE requests verify (moto: 403 SignatureDoesNotMatch for every API Gateway GET).
- Tagging on create also needs the tagging action (elasticloadbalancing:AddTags, ec2:CreateTags,
  ecs:TagResource, ssm:AddTagsToResource), and an ECS role ARN needs iam:PassRole (moto: not checked).
- AccessDenied names the action, in JSON for JSON services (moto: XML botocore cannot parse for them).
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
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
_INSTALLED = False
_ORIG: dict[str, Any] = {}
_TL = threading.local()


def _now() -> float:
    return time.monotonic()


def _utcnow() -> datetime:
    return datetime.now(UTC)


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


def _install_ec2() -> None:
    from moto.ec2.models.instances import InstanceBackend

    def run_instances(orig: Any) -> Any:
        # AWS puts an instance launched in a VPC subnet without security groups in that VPC's default
        # security group; moto leaves it in none, which no AWS account can show.
        def f(self: Any, image_id: str, count: int, user_data: Any, security_group_names: list[str],
              **kwargs: Any) -> Any:
            if (not security_group_names and not kwargs.get("security_group_ids")
                    and not kwargs.get("launch_template") and kwargs.get("subnet_id")):
                subnet = self.get_subnet(kwargs["subnet_id"])
                default = self.get_default_security_group(subnet.vpc_id)
                if default is not None:
                    kwargs["security_group_ids"] = [default.id]
            return orig(self, image_id, count, user_data, security_group_names, **kwargs)

        return f

    _wrap(InstanceBackend, "run_instances", "ec2.run_instances", run_instances)

    from moto.ec2.models.elastic_network_interfaces import NetworkInterface
    from moto.ec2.utils import generate_dns_from_ip

    def eni_init(orig: Any) -> Any:
        # Every interface has a private DNS name in AWS; moto gives one only in VPCs with DNS hostnames on, and
        # its ECS then fails to start awsvpc tasks anywhere else.
        def f(self: Any, *args: Any, **kwargs: Any) -> None:
            orig(self, *args, **kwargs)
            if not getattr(self, "private_dns_name", None) and self.private_ip_address:
                self.private_dns_name = generate_dns_from_ip(self.private_ip_address)

        return f

    _wrap(NetworkInterface, "__init__", "ec2.eni_init", eni_init)


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


def _install_elbv2() -> None:
    from moto.elbv2 import models as m
    from moto.elbv2.exceptions import ELBClientError
    from moto.elbv2.responses import ELBV2Response

    def set_subnets(orig: Any) -> Any:
        def f(self: Any, arn: str, subnets: list[str], subnet_mappings: list[dict[str, Any]]) -> Any:
            lb = self.load_balancers.get(arn)
            ids = [*subnets, *(m_["SubnetId"] for m_ in subnet_mappings)]
            if lb is not None and lb.type == "network" and len(ids) == 1:
                lb.subnets = [self.ec2_backend.get_subnet(ids[0])]
                return lb.availability_zones
            return orig(self, arn, subnets, subnet_mappings)
        return f

    def create_load_balancer(orig: Any) -> Any:
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

    def activate(orig: Any) -> Any:
        def f(self: Any) -> None:
            created = getattr(self, "_sbx_created", None)
            if self.state == "provisioning" and (
                created is None or _now() - created >= _CFG.nlb_provisioning
            ):
                self.state = "active"

        return f

    def delete_load_balancer(orig: Any) -> Any:
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
                    try:
                        ec2.delete_network_interface(eni_id)
                    except Exception:  # noqa: BLE001 - already gone
                        pass

        return f

    def tg_register(orig: Any) -> Any:
        def f(self: Any, targets: list[dict[str, Any]]) -> None:
            with LOCK:
                for target in targets:
                    inst = self.ec2_backend.get_instance_by_id(target["Id"])
                    if inst is not None and inst.state != "running":
                        raise m.TargetNotRunning(instance_id=target["Id"])
                    _tg_add(self, target["Id"], int(target.get("Port") or self.port), _now())

        return f

    def tg_deregister(orig: Any) -> Any:
        def f(self: Any, targets: list[dict[str, Any]]) -> None:
            with LOCK:
                for target in targets:
                    if target.get("Port"):
                        keys = [_tkey(target["Id"], target["Port"])]
                    else:
                        keys = [k for k, v in self.targets.items() if v["Id"] == target["Id"]]
                    for k in keys:
                        _tg_remove(self, k)

        return f

    def tg_deregister_terminated(orig: Any) -> Any:
        def f(self: Any, instance_ids: list[str]) -> None:
            for k, v in list(self.targets.items()):
                if v["Id"] in instance_ids:
                    _tg_remove(self, k)

        return f

    def tg_health_for(orig: Any) -> Any:
        def f(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
            return _health(self, target, ec2_backend)

        return f

    def describe_target_health(orig: Any) -> Any:
        def f(self: Any, target_group_arn: str, targets: list[dict[str, Any]]) -> Any:
            with LOCK:
                tg = self.target_groups.get(target_group_arn)
                if tg is None:
                    raise m.TargetGroupNotFoundError()
                _reconcile(_ecs(self.account_id, self.region_name))
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

    def call_action(orig: Any) -> Any:
        def f(self: Any) -> Any:
            with LOCK:
                try:
                    _reconcile(_ecs(self.current_account, self.region))
                except Exception:  # noqa: BLE001 - never break the ELB API on scheduler trouble
                    pass
                return orig(self)

        return f

    def resync_after(orig: Any) -> Any:
        # moto never detaches a target group from its NLB when the last listener forwarding to it is
        # deleted or modified; AWS does, and the runbook relies on it to delete stale target groups.
        def f(self: Any, *args: Any, **kwargs: Any) -> Any:
            with LOCK:
                result = orig(self, *args, **kwargs)
                _resync_target_group_load_balancers(self)
                return result

        return f

    _wrap(m.ELBv2Backend, "delete_listener", "elbv2.delete_listener", resync_after)
    _wrap(m.ELBv2Backend, "modify_listener", "elbv2.modify_listener", resync_after)
    _wrap(m.ELBv2Backend, "create_load_balancer", "elbv2.create_load_balancer", create_load_balancer)
    _wrap(m.ELBv2Backend, "delete_load_balancer", "elbv2.delete_load_balancer", delete_load_balancer)
    _wrap(m.ELBv2Backend, "set_subnets", "elbv2.set_subnets", set_subnets)
    _wrap(m.ELBv2Backend, "describe_target_health", "elbv2.describe_target_health", describe_target_health)
    _wrap(m.FakeLoadBalancer, "activate", "elbv2.activate", activate)
    _wrap(m.FakeTargetGroup, "register", "elbv2.tg.register", tg_register)
    _wrap(m.FakeTargetGroup, "deregister", "elbv2.tg.deregister", tg_deregister)
    _wrap(
        m.FakeTargetGroup,
        "deregister_terminated_instances",
        "elbv2.tg.deregister_terminated",
        tg_deregister_terminated,
    )
    _wrap(m.FakeTargetGroup, "health_for", "elbv2.tg.health_for", tg_health_for)
    _wrap(ELBV2Response, "call_action", "elbv2.call_action", call_action)


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


def _tkey(target_id: str, port: Any) -> str:
    return f"{target_id}:{int(port)}"


def _draining(tg: Any) -> dict[str, Any]:
    if not hasattr(tg, "_sbx_draining"):
        tg._sbx_draining = {}
    return tg._sbx_draining


def _tg_add(tg: Any, target_id: str, port: int, registered_at: float) -> None:
    key = _tkey(target_id, port)
    existing = tg.targets.get(key)
    tg.targets[key] = {
        "Id": target_id,
        "Port": int(port),
        "_registered": existing["_registered"] if existing else registered_at,
    }
    _draining(tg).pop(key, None)


def _tg_remove(tg: Any, key: str) -> bool:
    t = tg.targets.pop(key, None)
    if t is None:
        return False
    _draining(tg)[key] = ({"Id": t["Id"], "Port": t["Port"], "_draining": True}, _now() + _CFG.target_healthy)
    return True


def _health(tg: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
    from moto.elbv2.models import FakeHealthStatus

    tid = target["Id"]
    port = int(target.get("Port") or tg.port or 0)
    hc_port = tg.health_check_port

    def status(state: str, reason: str | None = None, desc: str | None = None) -> Any:
        return FakeHealthStatus(tid, port, hc_port, state, reason, desc)

    key = _tkey(tid, port)
    t = tg.targets.get(key)
    if t is None:
        drain = _draining(tg).get(key)
        if drain and drain[1] > _now():
            return status("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
        return status("unused", "Target.NotRegistered", "Target is not registered to the target group")
    inst = ec2_backend.get_instance_by_id(tid) if tid.startswith("i-") else None
    if inst is not None and inst.state != "running":
        return status("unhealthy", "Target.FailedHealthChecks", "Health checks failed")
    elb = _elbv2(tg.account_id, tg.region_name)
    lbs = [elb.load_balancers[a] for a in tg.load_balancer_arns if a in elb.load_balancers]
    if not lbs:
        return status(
            "unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer"
        )
    if inst is not None:
        azs = {s.availability_zone for lb in lbs for s in lb.subnets}
        if inst.availability_zone not in azs:
            return status(
                "unused",
                "Target.NotInUse",
                "Target is in an Availability Zone that is not enabled for the load balancer",
            )
    if not all(_lb_active(lb) for lb in lbs) or _now() - t["_registered"] < _CFG.target_healthy:
        return status("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
    if inst is not None and not _listening(tg.account_id, tg.region_name, tid, port):
        return status("unhealthy", "Target.FailedHealthChecks", "Health checks failed")
    if tg.target_type == "ip" and not _ip_listening(tg.account_id, tg.region_name, tid):
        return status("unhealthy", "Target.FailedHealthChecks", "Health checks failed")
    return status("healthy")


def _ip_listening(account_id: str, region: str, ip: str) -> bool:
    """An IP target answers while a running awsvpc task has that address."""
    ecs = _ecs(account_id, region)
    return any(getattr(t, "_sbx_ip", None) == ip and t.desired_status == "RUNNING" and t.last_status == "RUNNING"
               for tasks in ecs.tasks.values() for t in tasks.values())


def _listening(account_id: str, region: str, instance_id: str, port: int) -> bool:
    """False only when the instance is an ECS container instance and no running task binds `port`."""
    ecs = _ecs(account_id, region)
    for cluster, cis in ecs.container_instances.items():
        for ci in cis.values():
            if ci.ec2_instance_id != instance_id:
                continue
            for task in ecs.tasks.get(cluster, {}).values():
                if (
                    task.container_instance_arn == ci.container_instance_arn
                    and task.desired_status == "RUNNING"
                    and task.last_status == "RUNNING"
                    and port in _task_host_ports(ecs, task)
                ):
                    return True
            return False
    return True


# --------------------------------------------------------------------------------------------
# API Gateway V1
# --------------------------------------------------------------------------------------------


def set_vpc_link_status(account_id: str, region: str, link_id: str, status: str, message: str = "") -> None:
    """Force a V1 VPC link's status (e.g. FAILED) and statusMessage; it then stays there."""
    with LOCK:
        link = _apigw(account_id, region).get_vpc_link(link_id)
        link.status = status
        link.status_message = message or {
            "AVAILABLE": "Your VPC link is ready",
            "FAILED": "NLB is not available",
        }.get(status, "")
        link._sbx_forced = True


def _advance_vpc_link(link: Any) -> None:
    if getattr(link, "_sbx_forced", False) or link.status != "PENDING":
        return
    if _now() - getattr(link, "_sbx_created", 0.0) >= _CFG.vpc_link_pending:
        link.status = "AVAILABLE"
        link.status_message = "Your VPC link is ready"


def _install_apigateway() -> None:
    from moto.apigateway import models as m
    from moto.apigateway.exceptions import BadRequestException, NoIntegrationDefined
    from moto.apigateway.responses import APIGatewayResponse

    def link_init(orig: Any) -> Any:
        def f(self: Any, *args: Any, **kwargs: Any) -> None:
            orig(self, *args, **kwargs)
            self.status = "PENDING"
            self.status_message = "VPC link is provisioning ENIs"
            self._sbx_created = _now()

        return f

    def link_to_json(orig: Any) -> Any:
        def f(self: Any) -> dict[str, Any]:
            with LOCK:
                _advance_vpc_link(self)
                d = orig(self)
                d["status"] = self.status
                d["statusMessage"] = getattr(self, "status_message", "")
                return d

        return f

    def integration_to_json(orig: Any) -> Any:
        def f(self: Any) -> dict[str, Any]:
            d = orig(self)
            if getattr(self, "connection_id", None):
                d["connectionId"] = self.connection_id
            if getattr(self, "integration_target", None):
                d["integrationTarget"] = self.integration_target
            return {k: v for k, v in d.items() if v is not None}

        return f

    def put_integration(orig: Any) -> Any:
        def f(self: Any) -> Any:
            status, headers, _body = orig(self)
            parts = self.path.split("/")
            integ = self.backend.get_integration(parts[2], parts[4], parts[6])
            integ.connection_id = self._get_param("connectionId")
            integ.integration_target = self._get_param("integrationTarget")
            return status, headers, json.dumps(integ.to_json())

        return f

    def update_integration(self: Any) -> Any:
        parts = self.path.split("/")
        integ = self.backend.get_integration(parts[2], parts[4], parts[6])
        if integ is None:
            raise NoIntegrationDefined()
        for op in self._get_param("patchOperations") or []:
            kind, path, value = op.get("op"), op.get("path", ""), op.get("value")
            if kind not in ("replace", "add", "remove"):
                raise BadRequestException(f"Invalid patch operation specified. Must be add|remove|replace, got {kind}")
            if kind == "remove":
                value = None
            if path == "/uri":
                integ.uri = value
            elif path == "/connectionId":
                integ.connection_id = value
            elif path == "/connectionType":
                integ.connection_type = value
            elif path == "/httpMethod":
                integ.http_method = value
            elif path == "/timeoutInMillis":
                integ.timeout_in_millis = int(value) if value is not None else None
            elif path == "/passthroughBehavior":
                integ.passthrough_behaviour = value
            elif path == "/integrationTarget":
                integ.integration_target = value
            elif path.startswith("/requestParameters/"):
                name = path[len("/requestParameters/") :].replace("~1", "/").replace("~0", "~")
                params = dict(integ.request_parameters or {})
                if value is None:
                    params.pop(name, None)
                else:
                    params[name] = value
                integ.request_parameters = params
            else:
                raise BadRequestException(f"Invalid patch path '{path}' specified for op '{kind}'.")
        return 200, {}, json.dumps(integ.to_json())

    _wrap(m.VpcLink, "__init__", "apigw.link_init", link_init)
    _wrap(m.VpcLink, "to_json", "apigw.link_to_json", link_to_json)
    _wrap(m.Integration, "to_json", "apigw.integration_to_json", integration_to_json)
    _wrap(APIGatewayResponse, "put_integration", "apigw.put_integration", put_integration)
    APIGatewayResponse.update_integration = update_integration


# --------------------------------------------------------------------------------------------
# API Gateway V2 VPC links, security group dependencies
# --------------------------------------------------------------------------------------------


def set_vpc_link_v2_status(account_id: str, region: str, link_id: str, status: str, message: str = "") -> None:
    """Force a V2 VPC link's status (e.g. FAILED, INACTIVE) and message; it then stays there."""
    from moto.apigatewayv2.models import apigatewayv2_backends

    with LOCK:
        link = apigatewayv2_backends[account_id][region].get_vpc_link(link_id)
        link._sbx_status = status
        link._sbx_message = message or {"FAILED": "Subnet or security group is not valid",
                                         "INACTIVE": "VPC link is inactive: no integration has used it"}.get(status, "")
        link._sbx_forced = True


def _install_apigatewayv2() -> None:
    from moto.apigatewayv2 import models as m

    def create_vpc_link(orig: Any) -> Any:
        def f(self: Any, name: str, sg_ids: list[str], subnet_ids: list[str], tags: dict[str, str]) -> Any:
            with LOCK:
                link = orig(self, name, sg_ids, subnet_ids, tags)
                link._sbx_created = _now()
                link._sbx_status = "PENDING"
                link._sbx_message = "VPC link is provisioning ENIs"
                ec2 = _ec2(self.account_id, self.region_name)
                link._sbx_enis = []
                for subnet_id in subnet_ids or []:
                    eni = ec2.create_network_interface(subnet=ec2.get_subnet(subnet_id), private_ip_address=None,
                                                       group_ids=list(sg_ids or []),
                                                       description=f"VPC Endpoint Interface vpclink {link.id}")
                    eni.status = "in-use"
                    link._sbx_enis.append(eni.id)
                return link

        return f

    def delete_vpc_link(orig: Any) -> Any:
        def f(self: Any, vpc_link_id: str) -> None:
            with LOCK:
                link = self.vpc_links.get(vpc_link_id)
                orig(self, vpc_link_id)
                ec2 = _ec2(self.account_id, self.region_name)
                for eni_id in getattr(link, "_sbx_enis", []) if link else []:
                    try:
                        ec2.delete_network_interface(eni_id)
                    except Exception:  # noqa: BLE001 - already gone
                        pass

        return f

    def to_json(orig: Any) -> Any:
        def f(self: Any) -> dict[str, Any]:
            with LOCK:
                d = orig(self)
                status = getattr(self, "_sbx_status", None)
                if status == "PENDING" and _now() - self._sbx_created >= _CFG.vpc_link_pending:
                    self._sbx_status, self._sbx_message = "AVAILABLE", "VPC link is ready to route traffic"
                if status is not None:
                    d["vpcLinkStatus"] = self._sbx_status
                    d["vpcLinkStatusMessage"] = self._sbx_message
                return d

        return f

    _wrap(m.ApiGatewayV2Backend, "create_vpc_link", "apigwv2.create_vpc_link", create_vpc_link)
    _wrap(m.ApiGatewayV2Backend, "delete_vpc_link", "apigwv2.delete_vpc_link", delete_vpc_link)
    _wrap(m.VpcLink, "to_json", "apigwv2.link_to_json", to_json)


def _install_security_groups() -> None:
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.security_groups import SecurityGroupBackend

    def delete_security_group(orig: Any) -> Any:
        def f(self: Any, name: str | None = None, group_id: str | None = None) -> None:
            with LOCK:
                if group_id:
                    users = [e.id for e in self.enis.values() if group_id in {g.id for g in e._group_set}]
                    if users:
                        raise EC2ClientError("DependencyViolation",
                                             f"resource {group_id} has a dependent object ({users[0]})")
                    for groups in self.groups.values():
                        for group in groups.values():
                            if group.id == group_id:
                                continue
                            for rule in group.ingress_rules:
                                if (getattr(rule, "source_group", None) or {}).get("GroupId") == group_id:
                                    raise EC2ClientError("DependencyViolation",
                                                         f"resource {group_id} has a dependent object "
                                                         f"(a rule of {group.id})")
                return orig(self, name=name, group_id=group_id)

        return f

    _wrap(SecurityGroupBackend, "delete_security_group", "ec2.delete_security_group", delete_security_group)


# --------------------------------------------------------------------------------------------
# ECS scheduler
# --------------------------------------------------------------------------------------------


def _install_ecs() -> None:
    from moto.ecs import models as m
    from moto.ecs.exceptions import InvalidParameterException
    from moto.ecs.responses import EC2ContainerServiceResponse

    class SteadyTask(m.Task):
        """A task whose lifecycle is time based: PENDING -> RUNNING -> (stopped) STOPPED."""

        @property
        def status(self) -> str:  # type: ignore[override]
            if self.desired_status == "STOPPED" or getattr(self, "_sbx_stopped_at", None) is not None:
                return "STOPPED"
            created = getattr(self, "_sbx_created", None)
            if created is None or _now() - created >= _CFG.task_start:
                return "RUNNING"
            return "PENDING"

        @status.setter
        def status(self, value: str) -> None:
            if value == "STOPPED":
                self.desired_status = "STOPPED"

    class SchedContainer(m.Container):
        def __init__(self, task: Any, task_def: Any, cdef: dict[str, Any], bindings: list[dict[str, Any]]):
            super().__init__(task_def)
            self._task = task
            self.name = cdef.get("name")
            self.image = cdef.get("image")
            self.cpu = cdef.get("cpu", 0)
            self.memory = cdef.get("memory")
            self.health_status = "UNKNOWN"
            self.network_bindings = [
                {k: v for k, v in b.items() if k != "containerName"}
                for b in bindings
                if b["containerName"] == self.name
            ]

        @property
        def last_status(self) -> str:  # type: ignore[override]
            return self._task.last_status

        @last_status.setter
        def last_status(self, value: str) -> None:
            pass

    _ORIG["SteadyTask"] = SteadyTask
    _ORIG["SchedContainer"] = SchedContainer

    def adopt(tasks: Any) -> Any:
        for t in tasks or []:
            if type(t) is m.Task:
                t.__class__ = SteadyTask
                t._sbx_created = _now()
                t.created_at = t.started_at = _utcnow()
        return tasks

    def run_task(orig: Any) -> Any:
        def f(self: Any, *args: Any, **kwargs: Any) -> Any:
            with LOCK:
                return adopt(orig(self, *args, **kwargs))

        return f

    def create_service(orig: Any) -> Any:
        def f(self: Any, cluster_str: str, service_name: str, *args: Any, **kwargs: Any) -> Any:
            with LOCK:
                lbs = kwargs.get("load_balancers") or (args[2] if len(args) > 2 else None) or []
                elb = _elbv2(self.account_id, self.region_name)
                for lb in lbs:
                    arn = lb.get("targetGroupArn")
                    tg = elb.target_groups.get(arn) if arn else None
                    if arn and tg is None:
                        raise InvalidParameterException(f"Target group {arn} not found.")
                    if tg is not None and not tg.load_balancer_arns:
                        raise InvalidParameterException(
                            f"The target group with targetGroupArn {arn} does not have an associated load balancer."
                        )
                service = orig(self, cluster_str, service_name, *args, **kwargs)
                extra = getattr(_TL, "create_params", None) or {}
                _TL.create_params = None
                service.deployment_configuration = extra.get("deploymentConfiguration") or {
                    "maximumPercent": 200,
                    "minimumHealthyPercent": 100,
                    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
                }
                service.placement_constraints = extra.get("placementConstraints") or []
                service.placement_strategy = extra.get("placementStrategy") or []
                if extra.get("healthCheckGracePeriodSeconds") is not None:
                    service.health_check_grace_period_seconds = extra["healthCheckGracePeriodSeconds"]
                service.created_at = _utcnow()
                _reconcile(self)
                return service

        return f

    def resp_create_service(orig: Any) -> Any:
        def f(self: Any) -> Any:
            _TL.create_params = {
                k: self._get_param(k)
                for k in (
                    "deploymentConfiguration",
                    "placementConstraints",
                    "placementStrategy",
                    "healthCheckGracePeriodSeconds",
                )
            }
            try:
                return orig(self)
            finally:
                _TL.create_params = None

        return f

    def update_service(orig: Any) -> Any:
        def f(self: Any, props: dict[str, Any]) -> Any:
            with LOCK:
                _reconcile(self)
                service = orig(self, props)
                if service.task_definition and not service.task_definition.startswith("arn:"):
                    service.task_definition = self.describe_task_definition(service.task_definition).arn
                _reconcile(self)
                return service

        return f

    def delete_service(orig: Any) -> Any:
        def f(self: Any, cluster_name: str, service_name: str, force: bool) -> Any:
            with LOCK:
                _reconcile(self)
                service = orig(self, cluster_name, service_name, force)
                service.desired_count = 0
                _reconcile(self)
                return service

        return f

    def stop_task(orig: Any) -> Any:
        def f(self: Any, cluster_str: str, task_str: str, reason: str) -> Any:
            with LOCK:
                cluster = self._get_cluster(cluster_str)
                for arn, task in self.tasks.get(cluster.name, {}).items():
                    if arn.endswith(task_str.split("/")[-1]) and isinstance(task, SteadyTask):
                        _stop_task(self, task, reason or "Task stopped by user", "UserInitiated")
                        _reconcile(self)
                        return task
                return orig(self, cluster_str, task_str, reason)

        return f

    def list_tasks(orig: Any) -> Any:
        def f(self: Any, cluster_str: Any = None, container_instance: Any = None, family: Any = None,
              started_by: Any = None, service_name: Any = None, desiredStatus: Any = None) -> Any:  # noqa: N803
            with LOCK:
                tasks = orig(self, cluster_str, container_instance, family, started_by, None,
                             desiredStatus or "RUNNING")
                if service_name:
                    name = service_name.split("/")[-1]
                    tasks = [t for t in tasks if t.group == f"service:{name}"]
                return tasks

        return f

    def call_action(orig: Any) -> Any:
        def f(self: Any) -> Any:
            with LOCK:
                _reconcile(self.ecs_backend)
                return orig(self)

        return f

    B = m.EC2ContainerServiceBackend
    _wrap(B, "run_task", "ecs.run_task", run_task)
    _wrap(B, "start_task", "ecs.start_task", run_task)
    _wrap(B, "create_service", "ecs.create_service", create_service)
    _wrap(B, "update_service", "ecs.update_service", update_service)
    _wrap(B, "delete_service", "ecs.delete_service", delete_service)
    _wrap(B, "stop_task", "ecs.stop_task", stop_task)
    _wrap(B, "list_tasks", "ecs.list_tasks", list_tasks)
    _wrap(EC2ContainerServiceResponse, "create_service", "ecs.resp_create_service", resp_create_service)
    _wrap(EC2ContainerServiceResponse, "call_action", "ecs.call_action", call_action)


# ---- scheduler helpers ----------------------------------------------------------------------


def _sb(service: Any) -> dict[str, Any]:
    sb = getattr(service, "_sbx", None)
    if sb is None:
        dep = service.deployments[0] if service.deployments else None
        sb = {
            "tasks": [],
            "primary_id": dep["id"] if dep else f"ecs-svc/{uuid.uuid4().int % 10**19}",
            "primary_td": service.task_definition,
            "unplaced_msg": None,
            "steady": False,
        }
        if not service.deployments:
            service.deployments = [_new_deployment(service, sb["primary_id"])]
        service._sbx = sb
        if not hasattr(service, "deployment_configuration"):
            service.deployment_configuration = {"maximumPercent": 200, "minimumHealthyPercent": 100}
        if not hasattr(service, "placement_constraints"):
            service.placement_constraints = []
    return sb


def _new_deployment(service: Any, dep_id: str) -> dict[str, Any]:
    now = _utcnow()
    return {
        "id": dep_id,
        "status": "PRIMARY",
        "taskDefinition": service.task_definition,
        "desiredCount": service.desired_count,
        "pendingCount": 0,
        "runningCount": 0,
        "failedTasks": 0,
        "createdAt": now,
        "updatedAt": now,
        "launchType": service.launch_type or "EC2",
        "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": f"ECS deployment {dep_id} in progress.",
    }


def _event(service: Any, message: str) -> None:
    service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": _utcnow(), "message": message})
    del service.events[100:]


def _task_host_ports(ecs: Any, task: Any) -> set[int]:
    bindings = getattr(task, "_sbx_bindings", None)
    if bindings is not None:
        return {int(b["hostPort"]) for b in bindings}
    try:
        td = ecs.describe_task_definition(task.task_definition_arn)
    except Exception:  # noqa: BLE001 - deregistered definition
        return set()
    return set(_fixed_ports(td))


def _fixed_ports(td: Any) -> list[int]:
    ports = []
    for cdef in td.container_definitions:
        for pm in cdef.get("portMappings") or []:
            if td.network_mode == "host":
                ports.append(int(pm.get("hostPort") or pm.get("containerPort")))
            elif td.network_mode in (None, "bridge") and int(pm.get("hostPort") or 0) > 0:
                ports.append(int(pm["hostPort"]))
    return ports


def _live_tasks_on(ecs: Any, cluster: str, ci: Any) -> list[Any]:
    return [
        t
        for t in ecs.tasks.get(cluster, {}).values()
        if t.container_instance_arn == ci.container_instance_arn and t.desired_status == "RUNNING"
    ]


def _resource(resources: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((r for r in resources if r.get("name") == name), None)


def _used_ports(ecs: Any, cluster: str, ci: Any) -> set[int]:
    reserved = _resource(ci.registered_resources, "PORTS") or {}
    used = {int(p) for p in reserved.get("stringSetValue", [])}
    for t in _live_tasks_on(ecs, cluster, ci):
        used |= _task_host_ports(ecs, t)
    return used


def _requirements(td: Any) -> tuple[int, int]:
    cpu = sum(int(c.get("cpu") or 0) for c in td.container_definitions)
    mem = sum(int(c.get("memory") or c.get("memoryReservation") or 0) for c in td.container_definitions)
    return cpu, mem


def _remaining(ecs: Any, cluster: str, ci: Any) -> tuple[int, int]:
    cpu = (_resource(ci.registered_resources, "CPU") or {}).get("integerValue", 0)
    mem = (_resource(ci.registered_resources, "MEMORY") or {}).get("integerValue", 0)
    for t in _live_tasks_on(ecs, cluster, ci):
        try:
            c, mm = _requirements(ecs.describe_task_definition(t.task_definition_arn))
        except Exception:  # noqa: BLE001
            c, mm = 0, 0
        cpu -= c
        mem -= mm
    return cpu, mem


def _instance_running(ecs: Any, ci: Any) -> bool:
    inst = _ec2(ecs.account_id, ecs.region_name).get_instance_by_id(ci.ec2_instance_id)
    return inst is not None and inst.state == "running"


def _place(ecs: Any, service: Any, td: Any, live: list[Any]) -> tuple[Any, list[dict[str, Any]]] | tuple[None, str]:
    cluster = service.cluster_name
    prefix = (
        f"(service {service.name}) was unable to place a task because no container instance met all of its "
        "requirements."
    )
    if (service.launch_type or "EC2") == "FARGATE":
        return _FARGATE, []
    cis = [ci for ci in ecs.container_instances.get(cluster, {}).values() if ci.status == "ACTIVE"]
    cis = [ci for ci in cis if _instance_running(ecs, ci)]
    if not cis:
        return None, f"{prefix} Reason: No Container Instances were found in your cluster."
    fixed = set(_fixed_ports(td))
    need_cpu, need_mem = _requirements(td)
    distinct = any(c.get("type") == "distinctInstance" for c in (service.placement_constraints or []))
    candidates = []
    closest = None
    for ci in cis:
        mine = [t for t in live if t.container_instance_arn == ci.container_instance_arn]
        reason = None
        cpu, mem = _remaining(ecs, cluster, ci)
        if distinct and mine:
            reason = 'encountered error "DistinctInstance placement constraint unsatisfied."'
        elif fixed & _used_ports(ecs, cluster, ci):
            reason = "is already using a port required by your task"
        elif need_mem > mem:
            reason = "has insufficient memory available"
        elif need_cpu > cpu:
            reason = "has insufficient CPU units available"
        if reason:
            closest = closest or (ci, reason)
            continue
        az = ci.attributes.get("ecs.availability-zone")
        in_az = sum(
            1
            for t in live
            for c in cis
            if c.container_instance_arn == t.container_instance_arn
            and c.attributes.get("ecs.availability-zone") == az
        )
        candidates.append(((in_az, len(mine), len(_live_tasks_on(ecs, cluster, ci))), ci))
    if not candidates:
        ci, reason = closest  # type: ignore[misc]
        return None, (
            f"{prefix} The closest matching (container-instance {ci.id}) {reason}. For more information, see the "
            "Troubleshooting section of the Amazon ECS Developer Guide."
        )
    candidates.sort(key=lambda x: x[0])
    ci = candidates[0][1]
    used = _used_ports(ecs, cluster, ci)
    bindings = []
    next_dyn = DYNAMIC_PORTS[0]
    for cdef in td.container_definitions:
        for pm in cdef.get("portMappings") or []:
            cport = int(pm.get("containerPort"))
            if td.network_mode == "awsvpc":
                continue
            if td.network_mode == "host":
                hport = int(pm.get("hostPort") or cport)
            else:
                hport = int(pm.get("hostPort") or 0)
            if hport == 0:
                while next_dyn in used and next_dyn <= DYNAMIC_PORTS[1]:
                    next_dyn += 1
                hport = next_dyn
                used.add(hport)
            bindings.append(
                {
                    "containerName": cdef.get("name"),
                    "bindIP": "0.0.0.0",
                    "containerPort": cport,
                    "hostPort": hport,
                    "protocol": pm.get("protocol", "tcp"),
                }
            )
    return ci, bindings


_FARGATE = object()  # placement result of a Fargate task: no container instance


def _task_subnet(ecs: Any, service: Any, az: str | None, live: list[Any]) -> Any:
    """The subnet an awsvpc task's interface goes in: one of the service's subnets in the task's AZ, else the
    subnet (and so AZ) holding the fewest of the service's tasks."""
    ec2 = _ec2(ecs.account_id, ecs.region_name)
    ids = ((service.network_configuration or {}).get("awsvpcConfiguration") or {}).get("subnets") or []
    subnets = [ec2.get_subnet(i) for i in ids]
    same = [sn for sn in subnets if az and sn.availability_zone == az]
    pool = same or subnets
    used = [getattr(t, "_sbx_subnet", None) for t in live]
    return sorted(pool, key=lambda sn: (used.count(sn.id), sn.id))[0]


def _attach_task_eni(ecs: Any, service: Any, task: Any, az: str | None, live: list[Any]) -> None:
    ec2 = _ec2(ecs.account_id, ecs.region_name)
    for att in list(task.attachments):  # moto's: a random address in the first subnet
        for d in att.get("details", []):
            if d["name"] == "networkInterfaceId":
                try:
                    ec2.delete_network_interface(d["value"])
                except Exception:  # noqa: BLE001 - already gone
                    pass
    subnet = _task_subnet(ecs, service, az, live)
    groups = ((service.network_configuration or {}).get("awsvpcConfiguration") or {}).get("securityGroups") or []
    eni = ec2.create_network_interface(subnet=subnet, private_ip_address=_free_ip(ec2, subnet), group_ids=list(groups),
                                       description=f"arn:aws:ecs:{ecs.region_name}:{ecs.account_id}:attachment")
    eni.status = "in-use"
    task._sbx_ip, task._sbx_eni, task._sbx_subnet = eni.private_ip_address, eni.id, subnet.id
    task.availability_zone = subnet.availability_zone
    task.attachments = [{
        "id": str(uuid.uuid4()), "type": "ElasticNetworkInterface", "status": "ATTACHED",
        "details": [{"name": "subnetId", "value": subnet.id}, {"name": "networkInterfaceId", "value": eni.id},
                    {"name": "macAddress", "value": eni.mac_address},
                    {"name": "privateDnsName", "value": eni.private_dns_name},
                    {"name": "privateIPv4Address", "value": eni.private_ip_address}],
    }]


def _free_ip(ec2: Any, subnet: Any) -> str:
    """The lowest address of the subnet no interface holds, after the four AWS reserves (moto: a random one,
    possibly the network address or one already in use)."""
    import ipaddress
    import itertools

    used = {e.private_ip_address for e in ec2.enis.values() if getattr(e.subnet, "id", None) == subnet.id}
    hosts = itertools.islice(ipaddress.ip_network(subnet.cidr_block).hosts(), 3, None)
    return next(str(h) for h in hosts if str(h) not in used)


def _target_of(task: Any, lb: dict[str, Any]) -> tuple[str, int] | None:
    """(target id, port) a task registers for a service load balancer: its IP (awsvpc) or instance + host port."""
    if getattr(task, "_sbx_ip", None):
        return task._sbx_ip, int(lb.get("containerPort") or 0)
    port = _binding_for(task, lb)
    return (task._sbx_ec2_id, port) if port else None


def _start_task(ecs: Any, service: Any, td: Any, ci: Any, bindings: list[dict[str, Any]], dep_id: str) -> Any:
    from moto.ecs.models import Cluster  # noqa: F401 - typing only

    SteadyTask = _ORIG["SteadyTask"]
    SchedContainer = _ORIG["SchedContainer"]
    cluster = ecs.clusters[service.cluster_name]
    fargate = ci is _FARGATE
    live = [t for t in _sb(service)["tasks"] if t.desired_status == "RUNNING"]
    task = SteadyTask(
        cluster,
        td,
        None if fargate else ci.container_instance_arn,
        ecs._calculate_task_resource_requirements(td),
        backend=ecs,
        group=f"service:{service.name}",
        launch_type="FARGATE" if fargate else "EC2",
        started_by=dep_id,
        networking_configuration=getattr(service, "network_configuration", None) or None,
    )
    task._sbx_created = _now()
    task._sbx_stopped_at = None
    task._sbx_bindings = bindings
    task._sbx_service = service
    task._sbx_deployment = dep_id
    task._sbx_registered = False
    task._sbx_ec2_id = None if fargate else ci.ec2_instance_id
    task.created_at = _utcnow()
    task.availability_zone = None if fargate else ci.attributes.get("ecs.availability-zone")
    if td.network_mode == "awsvpc":
        _attach_task_eni(ecs, service, task, task.availability_zone, live)
    task.containers = [SchedContainer(task, td, c, bindings) for c in td.container_definitions]
    ecs.tasks.setdefault(cluster.name, {})[task.task_arn] = task
    _sb(service)["tasks"].append(task)
    return task


def _binding_for(task: Any, lb: dict[str, Any]) -> int | None:
    for b in task._sbx_bindings:
        if int(b["containerPort"]) == int(lb.get("containerPort") or 0) and (
            not lb.get("containerName") or lb["containerName"] == b["containerName"]
        ):
            return int(b["hostPort"])
    return None


def _stop_task(ecs: Any, task: Any, reason: str, code: str = "ServiceSchedulerInitiated") -> None:
    if task.desired_status == "STOPPED":
        return
    task.desired_status = "STOPPED"
    task._sbx_stopped_at = _now()
    task.stopped_reason = reason
    task.stop_code = code
    task.stopped_at = _utcnow()
    service = getattr(task, "_sbx_service", None)
    if service is not None and task._sbx_registered:
        elb = _elbv2(ecs.account_id, ecs.region_name)
        for lb in service.load_balancers or []:
            tg = elb.target_groups.get(lb.get("targetGroupArn"))
            target = _target_of(task, lb)
            if tg is not None and target:
                _tg_remove(tg, _tkey(*target))
        task._sbx_registered = False
    if getattr(task, "_sbx_eni", None):
        try:
            _ec2(ecs.account_id, ecs.region_name).delete_network_interface(task._sbx_eni)
        except Exception:  # noqa: BLE001 - already gone
            pass
        task._sbx_eni = None


def _reconcile(ecs: Any) -> None:
    """Advance every service of this ECS backend to what ECS would show now."""
    with LOCK:
        for service in list(ecs.services.values()):
            try:
                _reconcile_service(ecs, service)
            except Exception:  # noqa: BLE001 - keep the API up; the service just does not converge
                import logging

                logging.getLogger(__name__).exception("sandbox scheduler failed for %s", service.name)
        _refresh_instances(ecs)


def _reconcile_service(ecs: Any, service: Any) -> None:
    sb = _sb(service)
    if service.deployments and service.deployments[0].get("status") == "PRIMARY":
        primary = service.deployments[0]
    else:
        primary = _new_deployment(service, sb["primary_id"])
        service.deployments.insert(0, primary)
    # a new deployment: task definition changed, or force_new_deployment renamed the primary
    if service.task_definition != sb["primary_td"] or primary["id"] != sb["primary_id"]:
        old = dict(primary)
        old["id"] = sb["primary_id"]
        old["taskDefinition"] = sb["primary_td"]
        old["status"] = "ACTIVE"
        new_id = primary["id"] if primary["id"] != sb["primary_id"] else f"ecs-svc/{uuid.uuid4().int % 10**19}"
        new = _new_deployment(service, new_id)
        service.deployments = [new, old] + [d for d in service.deployments if d is not primary]
        sb["primary_id"], sb["primary_td"] = new_id, service.task_definition
        sb["steady"] = False
        sb["unplaced_msg"] = None
        primary = new
    dc = getattr(service, "deployment_configuration", None) or {}
    maxp = int(dc.get("maximumPercent", 200))
    minp = int(dc.get("minimumHealthyPercent", 100))
    active = service.status == "ACTIVE"
    td = None
    if service.task_definition:
        try:
            td = ecs.describe_task_definition(service.task_definition)
        except Exception:  # noqa: BLE001
            td = None
    elb = _elbv2(ecs.account_id, ecs.region_name)
    ec2 = _ec2(ecs.account_id, ecs.region_name)
    for _ in range(200):
        live = [t for t in sb["tasks"] if t.desired_status == "RUNNING"]
        # tasks on terminated instances / deregistered container instances are gone
        for t in live:
            if t._sbx_ec2_id is None:
                continue  # Fargate: no instance to lose
            inst = ec2.get_instance_by_id(t._sbx_ec2_id)
            if inst is None or inst.state in ("terminated", "shutting-down"):
                _stop_task(ecs, t, f"Host EC2 (instance {t._sbx_ec2_id}) terminated.", "TerminationNotice")
        live = [t for t in sb["tasks"] if t.desired_status == "RUNNING"]
        # register running tasks in the load balancers' target groups
        for t in live:
            if t.last_status == "RUNNING" and not t._sbx_registered:
                for lb in service.load_balancers or []:
                    tg = elb.target_groups.get(lb.get("targetGroupArn"))
                    target = _target_of(t, lb)
                    if tg is not None and target:
                        _tg_add(tg, target[0], target[1], t._sbx_created + _CFG.task_start)
                        _event(service, f"(service {service.name}) registered 1 targets in (target-group {tg.arn})")
                t._sbx_registered = True
        desired = int(service.desired_count or 0) if active else 0
        new = [t for t in live if t._sbx_deployment == primary["id"]]
        old = [t for t in live if t._sbx_deployment != primary["id"]]
        running = [t for t in live if t.last_status == "RUNNING"]
        max_total = max(desired * maxp // 100, desired if maxp >= 100 else 0)
        min_running = math.ceil(desired * minp / 100)
        if len(new) > desired:
            victim = sorted(new, key=lambda t: (t.last_status == "RUNNING", -t._sbx_created))[0]
            _stop_task(ecs, victim, f"Scaling activity initiated by (deployment {primary['id']})")
            _event(service, f"(service {service.name}) has stopped 1 running tasks: (task {victim.id}).")
            continue
        if active and td is not None and len(new) < desired and len(live) < max_total:
            ci, bindings = _place(ecs, service, td, live)
            if ci is not None:
                t = _start_task(ecs, service, td, ci, bindings, primary["id"])
                _event(service, f"(service {service.name}) has started 1 tasks: (task {t.id}).")
                sb["unplaced_msg"] = None
                continue
            if bindings != sb["unplaced_msg"]:
                sb["unplaced_msg"] = bindings
                _event(service, bindings)  # type: ignore[arg-type]
        if old:
            pending_old = [t for t in old if t.last_status != "RUNNING"]
            victim = pending_old[0] if pending_old else None
            if victim is None and len(running) - 1 >= min_running:
                victim = old[0]
            if victim is not None:
                _stop_task(ecs, victim, f"Scaling activity initiated by (deployment {primary['id']})")
                _event(service, f"(service {service.name}) has stopped 1 running tasks: (task {victim.id}).")
                continue
        break
    live = [t for t in sb["tasks"] if t.desired_status == "RUNNING"]
    service.running_count = sum(1 for t in live if t.last_status == "RUNNING")
    service.pending_count = sum(1 for t in live if t.last_status == "PENDING")
    keep = []
    for d in service.deployments:
        mine = [t for t in live if t._sbx_deployment == d["id"]]
        if d is not primary and not mine:
            continue
        r = sum(1 for t in mine if t.last_status == "RUNNING")
        p = len(mine) - r
        if d is primary:
            d["desiredCount"] = int(service.desired_count or 0) if active else 0
        else:
            d["desiredCount"] = len(mine)
        if (d["runningCount"], d["pendingCount"]) != (r, p):
            d["updatedAt"] = _utcnow()
        d["runningCount"], d["pendingCount"] = r, p
        keep.append(d)
    service.deployments = keep
    steady = (
        active
        and primary["runningCount"] == primary["desiredCount"]
        and primary["pendingCount"] == 0
        and len(keep) == 1
    )
    if steady:
        primary["rolloutState"] = "COMPLETED"
        primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
        if not sb["steady"]:
            _event(service, f"(service {service.name}) has reached a steady state.")
    elif primary.get("rolloutState") != "IN_PROGRESS" and not sb["steady"]:
        primary["rolloutState"] = "IN_PROGRESS"
    sb["steady"] = steady
    # prune long-stopped tasks from the scheduler's working set (they stay describable)
    sb["tasks"] = [t for t in sb["tasks"] if t.desired_status == "RUNNING" or _now() - t._sbx_stopped_at < 3600]


def _refresh_instances(ecs: Any) -> None:
    for cluster_name, cis in ecs.container_instances.items():
        for ci in cis.values():
            live = _live_tasks_on(ecs, cluster_name, ci)
            ci.running_tasks_count = sum(1 for t in live if t.last_status == "RUNNING")
            ci.pending_tasks_count = sum(1 for t in live if t.last_status == "PENDING")
            ci.agent_connected = _instance_running(ecs, ci)
            cpu, mem = _remaining(ecs, cluster_name, ci)
            used = sorted(_used_ports(ecs, cluster_name, ci))
            for r in ci.remaining_resources:
                if r.get("name") == "CPU":
                    r["integerValue"] = cpu
                elif r.get("name") == "MEMORY":
                    r["integerValue"] = mem
                elif r.get("name") == "PORTS":
                    r["stringSetValue"] = [str(p) for p in used]
    for cluster in ecs.clusters.values():
        tasks = [t for t in ecs.tasks.get(cluster.name, {}).values() if t.desired_status == "RUNNING"]
        cluster.running_tasks_count = sum(1 for t in tasks if t.last_status == "RUNNING")
        cluster.pending_tasks_count = sum(1 for t in tasks if t.last_status == "PENDING")
        cluster.active_services_count = sum(
            1 for s in ecs.services.values() if s.cluster_name == cluster.name and s.status == "ACTIVE"
        )


# ---- IAM enforcement (moto's INITIAL_NO_AUTH_ACTION_COUNT / POST /moto-api/reset-auth) -----------------

# Tagging on create, and handing a role to a service, are authorized separately by AWS (the caller needs the
# tagging action and iam:PassRole too); moto checks only the request's own action.
_TAG_ON_CREATE = {
    "elasticloadbalancing": ("elasticloadbalancing:AddTags", ("Tags.member.",)),
    "ec2": ("ec2:CreateTags", ("TagSpecification.",)),
    "ecs": ("ecs:TagResource", ("tags",)),
    "ssm": ("ssm:AddTagsToResource", ("Tags",)),
}
_PASSED_ROLES = {"ecs": ("taskRoleArn", "executionRoleArn", "role")}
# (caller ARN, action, the runbook step named in the User-Agent or "") of every authorization checked, in
# order: what CloudTrail would show.
AUTHORIZATIONS: list[tuple[str, str, str]] = []


def _step(req: Any) -> str:
    agent = {k.lower(): v for k, v in req._headers.items()}.get("user-agent", "")
    return next((part[5:] for part in agent.split() if part.startswith("step/")), "")


def _request_fields(req: Any) -> dict[str, Any]:
    """The request's parameters: the JSON body (JSON protocols) or the query/form fields (query protocols)."""
    body = req._body
    if body:
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                return parsed
        except (ValueError, UnicodeDecodeError):
            pass
    return {k: (v[0] if isinstance(v, list) and v else v) for k, v in (req._data or {}).items()}


def _implied_actions(req: Any) -> list[tuple[str, str]]:
    """(action, resource) pairs AWS also authorizes for this request: tag-on-create and iam:PassRole."""
    fields = _request_fields(req)
    service, operation = req._action.split(":", 1)
    implied = []
    tagging = _TAG_ON_CREATE.get(service)
    if tagging and operation.startswith(("Create", "Register", "Put", "Authorize", "Run")):
        action, prefixes = tagging
        if any(k.startswith(prefixes) and fields[k] for k in fields):
            implied.append((action, "*"))
    for key in _PASSED_ROLES.get(service, ()):
        if isinstance(fields.get(key), str) and fields[key].startswith("arn:"):
            implied.append(("iam:PassRole", fields[key]))
    return implied


def _json_protocol(req: Any) -> bool:
    content_type = {k.lower(): v for k, v in req._headers.items()}.get("content-type", "")
    query_protocol = req._service in ("ec2", "elasticloadbalancing", "iam", "sts")
    return not query_protocol and "www-form-urlencoded" not in content_type


def _install_iam() -> None:
    from moto.core.exceptions import AccessDeniedError, JsonRESTError
    from moto.iam import access_control as ac

    base = ac.IAMRequestBase

    class _XmlAccessDenied(AccessDeniedError):
        def __init__(self, message: str) -> None:
            super(AccessDeniedError, self).__init__("AccessDenied", message)

    def init(orig: Any) -> Any:
        def f(self: Any, *args: Any, **kwargs: Any) -> None:
            orig(self, *args, **kwargs)
            # API Gateway's IAM actions are the HTTP verbs of its management API (moto: operation names).
            if self._service == "apigateway":
                self._action = f"apigateway:{self._method}"
        return f

    def create_aws_request(orig: Any) -> Any:
        def f(self: Any) -> Any:
            request = orig(self)
            # A bodiless REST request was signed over an empty payload (moto re-signs it over the query fields).
            if self._method in ("GET", "HEAD", "DELETE") and not self._body:
                request.data = b""
            return request
        return f

    def check_action_permitted(orig: Any) -> Any:
        def f(self: Any, resource: str) -> None:
            AUTHORIZATIONS.append((self._access_key.arn, self._action, _step(self)))
            orig(self, resource)
            requested = self._action
            try:
                for action, target in _implied_actions(self):
                    self._action = action
                    self._implied_resource = target
                    AUTHORIZATIONS.append((self._access_key.arn, action, _step(self)))
                    orig(self, target)
            finally:
                self._action = requested
        return f

    def raise_access_denied(orig: Any) -> Any:
        def f(self: Any) -> None:
            resource = getattr(self, "_implied_resource", None)
            on = f" on resource: {resource}" if resource and resource != "*" else ""
            message = (f"User: {self._access_key.arn} is not authorized to perform: {self._action}{on} "
                       f"because no identity-based policy allows the {self._action} action")
            if _json_protocol(self):
                # JSON services answer in JSON (moto: always XML, which botocore cannot parse for them).
                err = JsonRESTError("AccessDeniedException", message)
                err.code = 403
                raise err
            raise _XmlAccessDenied(message)
        return f

    base.__init__ = init(base.__init__)
    base._create_aws_request = create_aws_request(base._create_aws_request)
    base.check_action_permitted = check_action_permitted(base.check_action_permitted)
    ac.IAMRequest._raise_access_denied = raise_access_denied(ac.IAMRequest._raise_access_denied)


__all__ = ["AUTHORIZATIONS", "LOCK", "install", "set_vpc_link_status", "set_vpc_link_v2_status"]
