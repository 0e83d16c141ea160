"""The check registry: every check declares its ids (hop, severity, remedy, the repair step), a Result with an id
no check declared is refused, every declared id is emitted by some judged inventory, and repair's steps for failing
checks are the ones the checks declare. The inventories are what `checks.fetch` reads on each path (V1 NLB with a
fixed host port, V2 link + ALB with dynamic host ports, awsvpc), healthy, empty and with faults."""

from __future__ import annotations

import copy
from dataclasses import replace
from types import SimpleNamespace

import pytest

from vpclink_runbooks import checks, repair
from vpclink_runbooks.checks import HOPS, SEVERITIES, Inventory, Result, UndeclaredCheck, registry
from vpclink_runbooks.names import Names
from vpclink_runbooks.params import load_params, load_raw, parse_params
from vpclink_runbooks.steps.api import FINGERPRINT_PREFIX, STAGE_VARIABLE, desired_integration, fingerprint
from vpclink_runbooks.steps.inspect import World
from vpclink_runbooks.steps.load_balancer import EPHEMERAL_RANGE, exposed_ports, health_check_drift

from .conftest import ROOT

LOCAL = load_params(ROOT / "params" / "local.yaml")  # V1 link, NLB, bridge with a fixed host port
V2_ALB = load_params(ROOT / "params" / "dev-v2.yaml")  # V2 link, ALB, bridge with dynamic host ports


def _awsvpc():
    raw = copy.deepcopy(load_raw(ROOT / "params" / "local.yaml"))
    raw["service"]["network_mode"] = "awsvpc"
    raw["service"].pop("host_port", None)
    return parse_params(raw, "awsvpc variant of params/local.yaml")


AWSVPC = _awsvpc()  # V1 link, NLB, IP targets in the tasks' own security group


def _cidr_local():
    raw = copy.deepcopy(load_raw(ROOT / "params" / "local.yaml"))
    raw.setdefault("nlb", {})["security_group"] = False
    return parse_params(raw, "nlb.security_group false variant of params/local.yaml")


CIDR_LOCAL = _cidr_local()  # V1 link, an NLB without a group: the instances admit its subnets' CIDRs


def _nlb_group(p) -> bool:
    return p.nlb.type == "network" and p.nlb.security_group
ZONES = {"subnet-a": ("eu-west-2a", "10.42.0.0/20"), "subnet-b": ("eu-west-2b", "10.42.16.0/20")}
STEADY = "(service orders) has reached a steady state."


def _groups(p, n: Names) -> dict[str, dict]:
    groups = {}
    if p.vpc_link.version == 2:
        groups[n.link_security_group] = {"GroupId": "sg-link", "GroupName": n.link_security_group}
    if p.nlb.type == "application":
        groups[n.alb_security_group] = {"GroupId": "sg-alb", "GroupName": n.alb_security_group}
    if p.awsvpc:
        groups[n.task_security_group] = {"GroupId": "sg-tasks", "GroupName": n.task_security_group}
    if _nlb_group(p):
        groups[n.nlb_security_group] = {"GroupId": "sg-nlb", "GroupName": n.nlb_security_group}
    return groups


def _group_rules(p, n: Names) -> dict[str, list[dict]]:
    rules = {}
    if p.nlb.type == "application":
        rules[n.alb_security_group] = [{"GroupId": "sg-alb", "IpProtocol": "tcp", "FromPort": p.listener_port,
                                        "ToPort": p.listener_port, "ReferencedGroupInfo": {"GroupId": "sg-link"}}]
    if p.awsvpc:
        port = p.service.container_port
        source = ({"ReferencedGroupInfo": {"GroupId": "sg-alb"}} if p.nlb.type == "application"
                  else {"ReferencedGroupInfo": {"GroupId": "sg-nlb"}} if _nlb_group(p)
                  else {"CidrIpv4": "10.42.0.0/16"})
        rules[n.task_security_group] = [{"GroupId": "sg-tasks", "IpProtocol": "tcp", "FromPort": port,
                                         "ToPort": port, **source}]
    return rules


def _instance_rules(p) -> list[dict]:
    if p.awsvpc:
        return []
    if p.dynamic_host_ports:
        low, high = EPHEMERAL_RANGE
        return [{"GroupId": "sg-inst", "IpProtocol": "tcp", "FromPort": low, "ToPort": high,
                 "ReferencedGroupInfo": {"GroupId": "sg-alb"}, "SecurityGroupRuleId": "sgr-alb"}]
    port = p.service.host_port
    if _nlb_group(p):
        return [{"GroupId": "sg-inst", "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                 "ReferencedGroupInfo": {"GroupId": "sg-nlb"}, "SecurityGroupRuleId": "sgr-nlb"}]
    return [{"GroupId": "sg-inst", "IpProtocol": "tcp", "FromPort": port, "ToPort": port, "CidrIpv4": cidr,
             "SecurityGroupRuleId": f"sgr-{subnet}"} for subnet, (_, cidr) in ZONES.items()]


def _load_balancer(p, n: Names) -> dict:
    kind = "app" if p.nlb.type == "application" else "net"
    return {"LoadBalancerName": n.nlb, "DNSName": f"{n.nlb}-0123.elb.{p.region}.amazonaws.com",
            "LoadBalancerArn": f"arn:aws:elasticloadbalancing:{p.region}:{p.account_id}:loadbalancer/{kind}/"
                               f"{n.nlb}/0123",
            "Type": p.nlb.type, "Scheme": "internal", "State": {"Code": "active"},
            "AvailabilityZones": [{"ZoneName": az, "SubnetId": s} for s, (az, _) in ZONES.items()],
            "SecurityGroups": ["sg-alb"] if p.nlb.type == "application" else ["sg-nlb"] if _nlb_group(p) else [],
            **({"EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic": "off"} if _nlb_group(p) else {})}


def _target_groups(p, n: Names, lb: dict) -> list[dict]:
    ctx = SimpleNamespace(params=p, names=n)
    health_check = {k: want for k, (_, want) in health_check_drift(ctx, {}).items()}
    return [{"TargetGroupName": n.target_group(port.host_port), "Port": port.host_port,
             "TargetGroupArn": f"arn:aws:elasticloadbalancing:{p.region}:{p.account_id}:targetgroup/"
                               f"{n.target_group(port.host_port)}/0456",
             "Protocol": "HTTP" if p.nlb.type == "application" else "TCP",
             "TargetType": "ip" if p.awsvpc else "instance", "LoadBalancerArns": [lb["LoadBalancerArn"]],
             **health_check} for port in exposed_ports(ctx)]


def _tasks(p, n: Names) -> list[dict]:
    tasks, zones = [], sorted(ZONES.items())
    for i in range(p.service.desired_count):  # spread over the zones, as ECS places them
        subnet, (az, cidr) = zones[i % len(zones)]
        port = p.service.container_port
        host = p.service.host_port if p.fixed_host_port else EPHEMERAL_RANGE[0] + i
        tasks.append({"id": f"task{i}", "instance_id": None if p.awsvpc else f"i-{subnet[-1]}",
                      "ip": f"{cidr.split('.0/')[0]}.{10 + i}" if p.awsvpc else None, "az": az,
                      "last_status": "RUNNING", "task_definition": f"{n.task_family}:1",
                      "bindings": {} if p.awsvpc else {port: host}, "created_at": f"2026-01-01T00:0{i}:00",
                      "stop_code": None, "stopped_reason": None})
    return tasks


def _service(p, n: Names, primary: dict) -> dict:
    service = {"serviceName": n.ecs_service, "runningCount": p.service.desired_count,
               "desiredCount": p.service.desired_count, "events": [{"message": STEADY}],
               "taskDefinition": f"arn:aws:ecs:{p.region}:{p.account_id}:task-definition/{n.task_family}:1",
               "deploymentConfiguration": {"minimumHealthyPercent": p.minimum_healthy_percent,
                                           "maximumPercent": p.maximum_percent},
               "loadBalancers": [{"targetGroupArn": primary["TargetGroupArn"], "containerName": n.container,
                                  "containerPort": p.service.container_port}]}
    if p.awsvpc:
        service["networkConfiguration"] = {"awsvpcConfiguration": {"securityGroups": ["sg-tasks"]}}
    return service


def _task_definition(p, n: Names) -> dict:
    s = p.service
    host = s.host_port if p.fixed_host_port else 0 if p.dynamic_host_ports else s.container_port
    return {"family": n.task_family, "revision": 1, "networkMode": s.network_mode,
            "executionRoleArn": f"arn:aws:iam::{p.account_id}:role/ecsTaskExecutionRole",
            "containerDefinitions": [{"name": n.container, "image": s.image,
                                      "portMappings": [{"containerPort": s.container_port, "hostPort": host}],
                                      "secrets": [{"name": k, "valueFrom": v} for k, v in s.secrets.items()]}]}


def healthy(p) -> Inventory:
    """What `checks.fetch` reads of a chain apply built and nobody broke, on the path `p` describes."""
    n = Names(p)
    lb = _load_balancer(p, n)
    v2 = p.vpc_link.version == 2
    link = ({"id": "vl0123", "name": n.vpc_link, "version": 2, "status": "AVAILABLE",
             "subnetIds": sorted(ZONES), "securityGroupIds": ["sg-link"]} if v2 else
            {"id": "vl0123", "name": n.vpc_link, "status": "AVAILABLE", "targetArns": [lb["LoadBalancerArn"]]})
    integration = desired_integration(SimpleNamespace(params=p, names=n), lb["DNSName"], link["id"],
                                      lb["LoadBalancerArn"])
    target_groups = _target_groups(p, n, lb)
    primary = next(t for t in target_groups if t["TargetGroupName"] == n.target_group(p.target_port))
    tasks = _tasks(p, n)
    instances = {} if p.awsvpc else {
        t["instance_id"]: {"InstanceId": t["instance_id"], "State": {"Name": "running"},
                           "Placement": {"AvailabilityZone": t["az"]}, "SecurityGroups": [{"GroupId": "sg-inst"}],
                           "PrivateIpAddress": f"10.42.{16 * (i % 2)}.5"} for i, t in enumerate(tasks)}
    health = {primary["TargetGroupArn"]: [
        {"Target": {"Id": t["ip"] if p.awsvpc else t["instance_id"],
                    "Port": p.service.container_port if p.awsvpc else t["bindings"][p.service.container_port]},
         "TargetHealth": {"State": "healthy"}} for t in tasks]}
    return Inventory(
        params=p, names=n, mapping={"restApiId": "api0123", "stage": p.api.stage, "basePath": p.api.base_path},
        api={"id": "api0123", "name": n.rest_api},
        stage={"stageName": p.api.stage, "deploymentId": "dep1", "variables": {STAGE_VARIABLE: link["id"]}},
        deployment={"id": "dep1", "description": FINGERPRINT_PREFIX + fingerprint(integration)},
        integration=integration, link=link, vpc_link_count=1, lb=lb, cross_zone=True,
        listeners=[{"Port": port.listener_port, "Protocol": "HTTP" if p.nlb.type == "application" else "TCP",
                    "DefaultActions": [{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}]}
                   for port, tg in zip(exposed_ports(SimpleNamespace(params=p)), target_groups, strict=True)],
        listener_groups={t["TargetGroupArn"]: t for t in target_groups}, target_groups=target_groups,
        health=health, subnets={s: {"SubnetId": s, "CidrBlock": cidr} for s, (_, cidr) in ZONES.items()},
        instances=instances, service=_service(p, n, primary), task_definition=_task_definition(p, n), tasks=tasks,
        all_rules=_instance_rules(p), groups=_groups(p, n), group_rules=_group_rules(p, n),
        probes={"test_invoke": {"status": 200, "ms": 40, "log": ""},
                "domain_request": {"url": f"https://{p.api.domain_name}/{p.api.base_path}/runbook-probe",
                                   "status": 200, "service_answered": True, "answered_by": "task0",
                                   "hop": "service", "ms": 55}})


def broken_local() -> Inventory:
    """The V1 chain with faults of the link, the targets and the instance group."""
    inv = healthy(LOCAL)
    inv.link["targetArns"] = ["arn:aws:elasticloadbalancing:eu-west-2:123456789012:loadbalancer/net/other/1"]
    primary = inv.target_groups[0]["TargetGroupArn"]
    inv.instances["i-b"]["State"] = {"Name": "stopped"}
    inv.instances["i-c"] = {"InstanceId": "i-c", "State": {"Name": "running"}, "SecurityGroups": [],
                            "Placement": {"AvailabilityZone": "eu-west-2c"}}
    inv.health[primary] += [{"Target": {"Id": "i-a", "Port": 10001}, "TargetHealth": {"State": "unhealthy"}},
                            {"Target": {"Id": "i-c", "Port": 10000}, "TargetHealth": {"State": "unused"}}]
    inv.all_rules.append({"GroupId": "sg-inst", "IpProtocol": "-1", "CidrIpv4": "0.0.0.0/0",
                          "SecurityGroupRuleId": "sgr-wide"})
    return inv


def broken_awsvpc() -> Inventory:
    """awsvpc tasks that are not in the tasks' own group."""
    inv = healthy(AWSVPC)
    inv.service["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] = ["sg-default"]
    return inv


def smelly_local() -> Inventory:
    """A working V1 chain with the quiet smells: the host port open to ::/0 and to the whole VPC, the other
    type's load balancer of this environment internet-facing, a container port on the host the params omit."""
    inv = healthy(LOCAL)
    port = LOCAL.service.host_port
    inv.all_rules += [
        {"GroupId": "sg-inst", "IpProtocol": "tcp", "FromPort": port, "ToPort": port, "CidrIpv6": "::/0",
         "SecurityGroupRuleId": "sgr-v6"},
        {"GroupId": "sg-inst", "IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "CidrIpv4": "10.0.0.0/8",
         "SecurityGroupRuleId": "sgr-vpc"}]
    other = {**inv.lb, "LoadBalancerName": f"{inv.names.base}-alb", "Type": "application",
             "Scheme": "internet-facing", "LoadBalancerArn": inv.lb["LoadBalancerArn"].replace("/net/", "/app/")}
    inv.world = World(vpc={"VpcId": LOCAL.vpc_id, "CidrBlock": "10.42.0.0/16", "CidrBlockAssociationSet": [
        {"CidrBlock": "10.42.0.0/16", "CidrBlockState": {"State": "associated"}}]}, subnets=[], instances=[],
        load_balancers=[inv.lb, other])
    inv.task_definition["containerDefinitions"][0]["portMappings"].append({"containerPort": 9090, "hostPort": 9090})
    return inv


def judged() -> dict[str, list[Result]]:
    inventories = {"empty": Inventory(params=LOCAL, names=Names(LOCAL)), "broken local": broken_local(),
                   "broken awsvpc": broken_awsvpc(), "smelly local": smelly_local()}
    inventories.update({f"healthy {name}": healthy(p) for name, p in
                        (("local", LOCAL), ("v2 alb", V2_ALB), ("awsvpc", AWSVPC), ("cidr local", CIDR_LOCAL))})
    return {name: checks.run_checks(inv) for name, inv in inventories.items()}


# (a) every declared check says its id, hop, severity, remedy and repair step

def test_every_declared_check_has_id_hop_severity_remedy_and_repair_step():
    assert len(checks.DECLARED) >= 40
    for check_id, d in checks.DECLARED.items():
        assert d.id == check_id and d.hop in HOPS and check_id.startswith(f"{d.hop}."), d
        assert d.severity in SEVERITIES and d.remedy.strip(), d
        assert d.repaired_by is None or d.repaired_by in repair.STEPS, d
    names = [fn.__name__ for fn in checks.CHECKS]
    assert {d.check for d in checks.DECLARED.values()} == set(names) and len(names) == len(set(names))
    assert all(fn.declares for fn in checks.CHECKS)
    assert {d.hop for d in checks.DECLARED.values()} == set(HOPS)


def test_a_declared_pattern_matches_its_concrete_ids_only():
    assert checks.declaration("listener.10000").id == "listener.{port}"
    assert checks.declaration("listener.exists").id == "listener.exists"
    for bad in ("listener.", "listener.10000.x", "mapping.exists.x", "nlb"):
        with pytest.raises(UndeclaredCheck):
            checks.declaration(bad)


# (b) emitting an undeclared id fails

def test_a_result_with_an_undeclared_id_or_another_hop_is_refused():
    with pytest.raises(UndeclaredCheck, match="mapping.forgotten"):
        Result("mapping.forgotten", "mapping", "fail", "a check nobody declared")
    with pytest.raises(UndeclaredCheck, match="declared on hop 'mapping'"):
        Result("mapping.exists", "stage", "fail", "the right id on the wrong hop")
    with pytest.raises(ValueError):
        Result("mapping.exists", "mapping", "broken", "not a status")


def test_a_check_emitting_an_id_it_does_not_declare_fails(monkeypatch):
    monkeypatch.setattr(registry, "DECLARED", dict(registry.DECLARED))
    monkeypatch.setattr(registry, "CHECKS", [])

    @registry.check(id="endpoint.borrowed", hop="endpoint", severity="warn", remedy="none", repaired_by=None)
    def borrows(inv):
        return Result("mapping.exists", "mapping", "fail", "declared, but by mapping_points_at_stage")

    with pytest.raises(UndeclaredCheck, match="borrows emitted mapping.exists"):
        borrows(Inventory(params=LOCAL, names=Names(LOCAL)))
    with pytest.raises(ValueError, match="declared twice"):
        registry.check(id="endpoint.borrowed", hop="endpoint", severity="warn", remedy="x", repaired_by=None)
    with pytest.raises(ValueError):
        registry.check(id="nowhere.x", hop="nowhere", severity="warn", remedy="x", repaired_by=None)


# (c) every declared id is emitted by at least one judged inventory

@pytest.fixture(scope="module")
def results() -> dict[str, list[Result]]:
    return judged()


@pytest.mark.parametrize("name", ["healthy local", "healthy v2 alb", "healthy awsvpc", "healthy cidr local"])
def test_a_healthy_inventory_passes_every_check_on_its_path(results, name):
    not_passed = {r.id: (r.status, r.detail) for r in results[name] if r.status != "pass"}
    assert not_passed == {}, not_passed


def test_every_declared_id_is_emitted_by_some_judged_inventory(results):
    emitted = {r.id for found in results.values() for r in found}
    never = sorted(d.id for d in checks.DECLARED.values() if not any(d.matches(i) for i in emitted))
    assert never == [], f"declared but emitted by no judged inventory: {never}"


def test_the_smells_warn_with_their_remedy_and_the_chain_still_verifies(results):
    warned = {r.id: r for r in results["smelly local"] if r.status == "warn"}
    assert set(warned) == {"security_group.open_to_ipv6_world", "security_group.open_to_vpc",
                           "nlb.other_internet_facing", "task_definition.host_port_not_in_params"}, warned
    assert "sgr-v6" in warned["security_group.open_to_ipv6_world"].detail
    assert "10.0.0.0/8" in warned["security_group.open_to_vpc"].detail
    assert "10.42.0.0/16" in warned["security_group.open_to_vpc"].detail
    assert "local-orders-alb" in warned["nlb.other_internet_facing"].remedy
    assert "9090->9090" in warned["task_definition.host_port_not_in_params"].detail
    assert all(r.remedy for r in warned.values())
    assert checks.verdict(results["smelly local"]).ok


def test_a_subnet_cidr_rule_is_no_vpc_wide_smell():
    """The NLB subnets' CIDR rules (an NLB without a group) are narrower than the VPC: no warning."""
    inv = healthy(CIDR_LOCAL)
    inv.world = smelly_local().world
    assert {r["CidrIpv4"] for r in inv.all_rules} == {cidr for _, cidr in ZONES.values()}
    assert "security_group.open_to_vpc" not in {r.id for r in checks.run_checks(inv)}
    inv.all_rules.append({**inv.all_rules[0], "CidrIpv4": "10.42.0.0/16", "SecurityGroupRuleId": "sgr-vpc"})
    assert "security_group.open_to_vpc" in {r.id for r in checks.run_checks(inv) if r.status == "warn"}


def test_the_faults_fail_their_own_checks(results):
    failing = {r.id for r in checks.failed(results["broken local"])}
    assert {"vpc_link.target", "targets.port", "targets.instances_running", "targets.az_enabled",
            "security_group.no_wide_rule"} <= failing, failing
    assert checks.first_broken_hop(results["broken local"]) == "vpc_link"
    assert {r.id for r in checks.failed(results["broken awsvpc"])} == {"security_group.task_attached"}


# (d) repair's steps for failing checks come from repaired_by

def test_repair_steps_for_failing_checks_are_their_declared_repaired_by(results, monkeypatch):
    failing = [r for found in results.values() for r in checks.failed(found)]
    assert {r.hop for r in failing} >= {"mapping", "vpc_link", "targets", "security_group"}
    for result in failing:
        assert repair.owner(result) == checks.declaration(result.id).repaired_by, result.id
        assert repair.OWNER[result.id] == repair.owner(result)
    stray = next(r for r in failing if r.id == "targets.port")
    assert repair.owner(stray) == "targets"
    monkeypatch.setitem(registry.DECLARED, "targets.port", replace(registry.DECLARED["targets.port"],
                                                                    repaired_by=None))
    assert repair.owner(stray) is None  # repair follows the declaration, nothing else
