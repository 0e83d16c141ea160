"""`runbook export ENV --format terraform` after a real apply on the sandbox: the output parses as HCL, every
resource the runbook created is imported exactly once with its live id (listed independently with plain boto3),
every import has its resource block, references are by address, the export is deterministic and read-only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest
from hcl2 import SerializationOptions

from vpclink_runbooks import export as export_mod
from vpclink_runbooks import policy
from vpclink_runbooks.params import load_params
from vpclink_runbooks.run.runner import run

from .conftest import ROOT

pytestmark = pytest.mark.notebooks

LOCAL = str(ROOT / "params" / "local.yaml")
TAGS = {"runbook:environment": "local", "runbook:service": "orders", "runbook:managed-by": "vpclink-runbooks"}
# Resource types whose AWS resources carry tags (the runbook tags everything it creates that takes tags).
TAGGED = {"aws_lb", "aws_lb_target_group", "aws_lb_listener", "aws_api_gateway_vpc_link", "aws_ecs_task_definition",
          "aws_vpc_security_group_ingress_rule", "aws_ecs_service", "aws_api_gateway_rest_api"}
HCL = SerializationOptions(strip_string_quotes=True, with_comments=False)


def runbook_export(out: Path, params_file: str = LOCAL, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real command, in a process of its own (as a user runs it)."""
    return subprocess.run([sys.executable, "-m", "vpclink_runbooks.cli", "export", params_file, "--format",
                           "terraform", "--out", str(out)], env=env or dict(os.environ), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def parse(directory: Path) -> dict[str, dict]:
    return {f.name: hcl2.loads(f.read_text(), serialization_options=HCL) for f in sorted(directory.glob("*.tf"))}


def imports(parsed: dict[str, dict]) -> list[tuple[str, str]]:
    """(address, id) of every import block in any file."""
    found = []
    for doc in parsed.values():
        for block in doc.get("import", []):
            to = block["to"]
            assert to.startswith("${") and to.endswith("}"), to
            found.append((to[2:-1], block["id"]))
    return found


def resources(parsed: dict[str, dict]) -> dict[str, dict]:
    """address -> body of every resource block in any file (an address twice is an error)."""
    found: dict[str, dict] = {}
    for doc in parsed.values():
        for entry in doc.get("resource", []):
            for tf_type, named in entry.items():
                for label, body in named.items():
                    address = f"{tf_type}.{label}"
                    assert address not in found, f"{address} defined twice"
                    found[address] = body
    return found


def expected_ids(box, params) -> dict[str, set[str]]:
    """Every live resource the runbook created for params' environment, by Terraform type, as the provider's
    import id: listed with plain boto3 by the runbook's tags (as lifecycle.owned() does, per environment),
    and the pieces that hang off them (listeners, the API's resource, method, integration, stage...)."""
    s = box.session(params.region)
    elbv2, gw, gw2, ecs, ec2 = (s.client(n) for n in ("elbv2", "apigateway", "apigatewayv2", "ecs", "ec2"))

    def mine(tags) -> bool:
        if isinstance(tags, list):
            tags = {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in tags}
        return all((tags or {}).get(k) == v for k, v in {**TAGS, "runbook:environment": params.environment,
                                                         "runbook:service": params.service.name}.items())

    def elb(arns: list[str]) -> set[str]:
        return {d["ResourceArn"] for d in elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]
                if mine(d["Tags"])} if arns else set()

    services = ecs.list_services(cluster=params.cluster)["serviceArns"]
    family = f"{params.environment}-{params.service.name}"
    ids = {
        "aws_lb": elb([lb["LoadBalancerArn"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]]),
        "aws_lb_target_group": elb([tg["TargetGroupArn"] for tg in elbv2.describe_target_groups()["TargetGroups"]]),
        "aws_api_gateway_vpc_link": {v["id"] for v in gw.get_vpc_links()["items"] if mine(v.get("tags"))},
        "aws_apigatewayv2_vpc_link": {v["VpcLinkId"] for v in gw2.get_vpc_links()["Items"] if mine(v.get("Tags"))},
        "aws_api_gateway_rest_api": {a["id"] for a in gw.get_rest_apis()["items"] if mine(a.get("tags"))},
        "aws_ecs_service": {f"{params.cluster}/{sv['serviceName']}" for sv in (ecs.describe_services(
            cluster=params.cluster, services=services, include=["TAGS"])["services"] if services else [])
            if sv["status"] == "ACTIVE" and mine(sv.get("tags"))},
        "aws_ecs_task_definition": {arn for arn in ecs.list_task_definitions(
            familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]
            if mine(ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"]).get("tags"))},
        "aws_security_group": {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
                               if mine(g.get("Tags"))},
        "aws_vpc_security_group_ingress_rule": {r["SecurityGroupRuleId"] for r in ec2.describe_security_group_rules()[
            "SecurityGroupRules"] if mine(r.get("Tags"))},
    }
    ids["aws_lb_listener"] = {li["ListenerArn"] for arn in ids["aws_lb"]
                              for li in elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]}
    for key in ("resource", "method", "integration", "stage", "deployment", "base_path_mapping"):
        ids[f"aws_api_gateway_{key}"] = set()
    for api in sorted(ids["aws_api_gateway_rest_api"]):
        proxy = next(r for r in gw.get_resources(restApiId=api)["items"] if r.get("pathPart") == "{proxy+}")
        ids["aws_api_gateway_resource"].add(f"{api}/{proxy['id']}")
        ids["aws_api_gateway_method"].add(f"{api}/{proxy['id']}/ANY")
        ids["aws_api_gateway_integration"].add(f"{api}/{proxy['id']}/ANY")
        for stage in gw.get_stages(restApiId=api)["item"]:
            ids["aws_api_gateway_stage"].add(f"{api}/{stage['stageName']}")
            ids["aws_api_gateway_deployment"].add(f"{api}/{stage['deploymentId']}")
    ids["aws_api_gateway_base_path_mapping"] = {
        f"{params.api.domain_name}/{m['basePath']}"
        for m in gw.get_base_path_mappings(domainName=params.api.domain_name)["items"]
        if m["restApiId"] in ids["aws_api_gateway_rest_api"]}
    return ids


def assert_imported_exactly(found: list[tuple[str, str]], expected: dict[str, set[str]]) -> None:
    """Each live resource imported exactly once under its type, and nothing else imported."""
    by_type: dict[str, list[str]] = {}
    for address, import_id in found:
        by_type.setdefault(address.split(".")[0], []).append(import_id)
    for tf_type, ids in expected.items():
        got = by_type.pop(tf_type, [])
        assert sorted(got) == sorted(ids), f"{tf_type}: imported {got}, live {sorted(ids)}"
    assert not by_type, f"imports of types nothing created: {by_type}"
    assert len({a for a, _ in found}) == len(found), "an address is imported twice"


@pytest.fixture(scope="module")
def exported(sandbox, tmp_path_factory):
    """Export before apply (refused), apply, then export twice with every AWS call of the export logged."""
    params = load_params(LOCAL)
    base = tmp_path_factory.mktemp("export")
    before = runbook_export(base / "before")
    result = run("apply", LOCAL)
    assert result.exit_code == 0, result.record.get("error")
    call_log = base / "calls.jsonl"
    first = runbook_export(base / "first", env=dict(os.environ, RUNBOOK_CALL_LOG=str(call_log)))
    assert first.returncode == 0, first.stderr
    second = runbook_export(base / "second")
    assert second.returncode == 0, second.stderr
    calls = [json.loads(line) for line in call_log.read_text().splitlines()]
    return {"params": params, "base": base, "before": before, "first": first, "second": second, "calls": calls,
            "out": base / "first", "expected": expected_ids(sandbox, params)}


def test_export_before_apply_is_refused_with_exit_2(exported):
    before = exported["before"]
    assert before.returncode == 2, before.stdout + before.stderr
    assert "nothing to export" in before.stderr and "runbook apply" in before.stderr
    assert not (exported["base"] / "before").exists(), "nothing is written when nothing exists"


def test_export_without_a_running_sandbox_is_refused_with_exit_2(exported, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env["RUNBOOK_SANDBOX_FILE"] = str(tmp_path / "no-sandbox.json")
    result = runbook_export(tmp_path / "out", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no sandbox is running" in result.stderr
    assert not (tmp_path / "out").exists()


def test_output_parses_as_hcl(exported):
    out = exported["out"]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "imports.tf", "main.tf", "versions.tf"]
    parsed = parse(out)
    versions = parsed["versions.tf"]
    assert versions["terraform"][0]["required_providers"][0]["aws"]["source"] == "hashicorp/aws"
    provider = versions["provider"][0]["aws"]
    assert provider["region"] == exported["params"].region
    assert provider["allowed_account_ids"] == [exported["params"].account_id]


def test_every_created_resource_is_imported_exactly_once_with_its_live_id(exported):
    expected = exported["expected"]
    v1_only = {"aws_apigatewayv2_vpc_link"}  # the V1 path creates no V2 link (its one group is the NLB's own)
    assert all(ids for t, ids in expected.items() if t not in v1_only), f"one of each kind expected: {expected}"
    assert not any(expected[t] for t in v1_only)
    assert len(expected["aws_security_group"]) == 1
    assert_imported_exactly(imports(parse(exported["out"])), expected)
    lb = next(body for address, body in resources(parse(exported["out"])).items() if address.startswith("aws_lb."))
    assert lb["enforce_security_group_inbound_rules_on_private_link_traffic"] == "off"
    assert lb["security_groups"] == ["${aws_security_group.local_orders_nlb.id}"]


def test_every_import_has_its_resource_block_and_every_block_an_import(exported):
    parsed = parse(exported["out"])
    addresses = [a for a, _ in imports(parsed)]
    assert sorted(addresses) == sorted(resources(parsed))


def test_resources_refer_to_each_other_by_address_and_carry_the_tags(exported):
    parsed = parse(exported["out"])
    blocks = resources(parsed)

    def ref(tf_type: str, attribute: str) -> str:
        (address,) = [a for a in blocks if a.startswith(tf_type + ".")]
        return f"${{{address}.{attribute}}}"

    (listener,) = [b for a, b in blocks.items() if a.startswith("aws_lb_listener.")]
    assert listener["load_balancer_arn"] == ref("aws_lb", "arn")
    assert listener["default_action"][0]["target_group_arn"] == ref("aws_lb_target_group", "arn")
    (link,) = [b for a, b in blocks.items() if a.startswith("aws_api_gateway_vpc_link.")]
    assert link["target_arns"] == [ref("aws_lb", "arn")]
    (service,) = [b for a, b in blocks.items() if a.startswith("aws_ecs_service.")]
    assert service["task_definition"] == ref("aws_ecs_task_definition", "arn")
    assert service["load_balancer"][0]["target_group_arn"] == ref("aws_lb_target_group", "arn")
    (integration,) = [b for a, b in blocks.items() if a.startswith("aws_api_gateway_integration.")]
    assert integration["resource_id"] == ref("aws_api_gateway_resource", "id")
    # The stage variable stays a literal for API Gateway: escaped, not a Terraform interpolation.
    assert integration["connection_id"] == "$${stageVariables.vpcLinkId}"
    assert "${aws_lb." in integration["uri"] and integration["uri"].endswith(":10000/{proxy}")
    (stage,) = [b for a, b in blocks.items() if a.startswith("aws_api_gateway_stage.")]
    assert stage["deployment_id"] == ref("aws_api_gateway_deployment", "id")
    assert stage["variables"]["vpcLinkId"] == ref("aws_api_gateway_vpc_link", "id")
    (mapping,) = [b for a, b in blocks.items() if a.startswith("aws_api_gateway_base_path_mapping.")]
    assert mapping["api_id"] == ref("aws_api_gateway_rest_api", "id")
    assert mapping["base_path"] == exported["params"].api.base_path
    for address, body in blocks.items():
        if address.split(".")[0] in TAGGED:
            assert body["tags"] == TAGS, address
    # Pre-existing things stay literal ids: the instance security group is not ours to import.
    rules = [b for a, b in blocks.items() if a.startswith("aws_vpc_security_group_ingress_rule.")]
    assert rules and all(r["security_group_id"].startswith("sg-") for r in rules)


def test_resource_arguments_are_the_live_values(exported, sandbox):
    params = exported["params"]
    blocks = resources(parse(exported["out"]))
    s = sandbox.session(params.region)
    elbv2, ecs = s.client("elbv2"), s.client("ecs")
    (lb_address,) = [a for a in blocks if a.startswith("aws_lb.")]
    lb = elbv2.describe_load_balancers(Names=[blocks[lb_address]["name"]])["LoadBalancers"][0]
    assert blocks[lb_address]["subnets"] == sorted(az["SubnetId"] for az in lb["AvailabilityZones"])
    assert blocks[lb_address]["internal"] is True and blocks[lb_address]["load_balancer_type"] == "network"
    assert blocks[lb_address]["enable_cross_zone_load_balancing"] is True
    (tg,) = [b for a, b in blocks.items() if a.startswith("aws_lb_target_group.")]
    live_tg = elbv2.describe_target_groups(Names=[tg["name"]])["TargetGroups"][0]
    assert (tg["port"], tg["protocol"], tg["target_type"]) == (live_tg["Port"], "TCP", "instance")
    assert tg["health_check"][0]["protocol"] == live_tg["HealthCheckProtocol"]
    (service,) = [b for a, b in blocks.items() if a.startswith("aws_ecs_service.")]
    live = ecs.describe_services(cluster=params.cluster, services=[params.service.name])["services"][0]
    assert service["desired_count"] == live["desiredCount"] == params.service.desired_count
    assert service["cluster"] == live["clusterArn"]
    (td,) = [b for a, b in blocks.items() if a.startswith("aws_ecs_task_definition.")]
    assert params.service.image in td["container_definitions"]
    assert f"hostPort = {params.service.host_port}" in td["container_definitions"]


def test_export_is_deterministic(exported):
    first, second = exported["out"], exported["base"] / "second"
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert exported["first"].stdout.replace(str(first), "X") == exported["second"].stdout.replace(str(second), "X")


def test_export_makes_no_mutating_call_and_declares_every_call(exported):
    calls = exported["calls"]
    assert {c["service"] for c in calls} >= {"elbv2", "apigateway", "ecs", "ec2", "sts"}
    assert [c for c in calls if c["mutating"]] == []
    declared = set(export_mod.PERMISSIONS)
    undeclared = sorted({f"{c['service']}.{c['operation']}" for c in calls
                         if policy.iam_action(c["service"], c["operation"]) not in declared})
    assert not undeclared, f"calls export.PERMISSIONS does not declare: {undeclared}"
    assert "export" in policy.STEP_MODULES


def test_a_mutating_call_is_refused_before_it_is_sent(exported, sandbox):
    ctx = export_mod.connect(exported["params"])
    lb = ctx.aws.elbv2.describe_load_balancers()["LoadBalancers"][0]
    with pytest.raises(export_mod.MutationRefused, match="DeleteLoadBalancer"):
        ctx.aws.elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    assert sandbox.session().client("elbv2").describe_load_balancers(
        LoadBalancerArns=[lb["LoadBalancerArn"]])["LoadBalancers"], "the load balancer is still there"
    assert not [c for c in ctx.aws.recorder.calls if c["mutating"]]


def test_readme_says_how_to_adopt(exported):
    readme = (exported["out"] / "README.md").read_text()
    assert "terraform init" in readme and "terraform plan" in readme
    n = sum(len(ids) for ids in exported["expected"].values())
    assert f"{n} to import, 0 to add, 0 to change, 0 to destroy" in readme


def test_hcl_strings_keep_their_value():
    tricky = 'a "quoted" \\ back ${not.interpolated} %{not_a_directive} \n tab\t'
    text = f"x = {export_mod.hcl_string(tricky)}\n"
    parsed = hcl2.loads(text, serialization_options=HCL)["x"]
    # python-hcl2 resolves backslash escapes but leaves template escapes as written, as Terraform reads them.
    assert parsed == tricky.replace("${", "$${").replace("%{", "%%{")


def test_a_missing_resource_is_reported_and_skipped_not_invented(exported, sandbox, tmp_path):
    """Someone removed the base path mapping by hand: export reports it and imports everything else."""
    params = exported["params"]
    gw = sandbox.session(params.region).client("apigateway")
    gw.delete_base_path_mapping(domainName=params.api.domain_name, basePath=params.api.base_path)
    result = runbook_export(tmp_path / "out")
    assert result.returncode == 0, result.stderr
    parsed = parse(tmp_path / "out")
    types = {a.split(".")[0] for a, _ in imports(parsed)}
    assert "aws_api_gateway_base_path_mapping" not in types
    assert "aws_api_gateway_base_path_mapping" not in {a.split(".")[0] for a in resources(parsed)}
    assert len(types) == len([t for t, ids in exported["expected"].items() if ids]) - 1
    assert "skipped aws_api_gateway_base_path_mapping" in " ".join(result.stdout.split())
    assert "aws_api_gateway_base_path_mapping" in (tmp_path / "out" / "README.md").read_text()


def test_security_groups_the_runbook_created_are_exported_with_references(exported, sandbox, tmp_path):
    """The V2 / ALB / awsvpc paths create their own security groups, tagged like everything else. Made here with
    plain boto3 the way those paths make them; export must adopt them too, and refer to the group by address
    from a rule inside it."""
    params = exported["params"]
    s = sandbox.session(params.region)
    ec2 = s.client("ec2")
    tags = [{"Key": k, "Value": v} for k, v in TAGS.items()]
    group = ec2.create_security_group(
        GroupName="local-orders-vpclink", Description="local-orders: V2 link", VpcId=params.vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}])["GroupId"]
    rule = ec2.authorize_security_group_ingress(
        GroupId=group, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                       "IpRanges": [{"CidrIp": "10.42.0.0/16"}]}],
        TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": tags}])["SecurityGroupRules"][0]
    other = ec2.create_security_group(GroupName="someone-elses", Description="not ours", VpcId=params.vpc_id)
    result = runbook_export(tmp_path / "out")
    assert result.returncode == 0, result.stderr
    parsed = parse(tmp_path / "out")
    found = imports(parsed)
    by_type: dict[str, list[str]] = {}
    for address, import_id in found:
        by_type.setdefault(address.split(".")[0], []).append(import_id)
    assert group in by_type["aws_security_group"]  # beside the NLB's own group
    assert other["GroupId"] not in {i for _, i in found}
    assert by_type["aws_vpc_security_group_ingress_rule"].count(rule["SecurityGroupRuleId"]) == 1
    blocks = resources(parsed)
    (group_address,) = [a for a in blocks if a.startswith("aws_security_group.") and a.endswith("_vpclink")]
    (rule_body,) = [b for a, b in blocks.items() if a.startswith("aws_vpc_security_group_ingress_rule.")
                    and b["from_port"] == 443]
    assert rule_body["security_group_id"] == f"${{{group_address}.id}}"
    assert blocks[group_address]["vpc_id"] == params.vpc_id and blocks[group_address]["tags"] == TAGS
    assert sorted(addr for addr, _ in found) == sorted(blocks)


def test_every_port_and_every_task_definition_revision_is_exported(exported, sandbox, tmp_path):
    """Another apply with an extra exposed port: two target groups, two listeners, a second task definition
    revision and more rules; each is imported once, and each listener forwards to its own group by address."""
    from .conftest import write_params

    params = exported["params"]
    changed = write_params(tmp_path, service__extra_ports=[{"container_port": 7777, "host_port": 10001,
                                                             "expose": True}])
    result = run("apply", str(changed))
    assert result.exit_code == 0, result.record.get("error")
    out = runbook_export(tmp_path / "out")
    assert out.returncode == 0, out.stderr
    parsed = parse(tmp_path / "out")
    expected = expected_ids(sandbox, params)
    assert len(expected["aws_lb_listener"]) == 2 and len(expected["aws_ecs_task_definition"]) == 2
    assert_imported_exactly(imports(parsed), expected)
    blocks = resources(parsed)
    groups = {b["port"]: f"${{{a}.arn}}" for a, b in blocks.items() if a.startswith("aws_lb_target_group.")}
    listeners = {b["port"]: b for a, b in blocks.items() if a.startswith("aws_lb_listener.")}
    assert sorted(groups) == sorted(listeners) == [10000, 10001]
    for port, listener in listeners.items():
        assert listener["default_action"][0]["target_group_arn"] == groups[port]
    (service,) = [b for a, b in blocks.items() if a.startswith("aws_ecs_service.")]
    live = sandbox.session(params.region).client("ecs").describe_services(
        cluster=params.cluster, services=[params.service.name])["services"][0]
    (current,) = [a for a in blocks if a.startswith("aws_ecs_task_definition.")
                  and a.endswith("_" + live["taskDefinition"].rsplit(":", 1)[1])]
    assert service["task_definition"] == f"${{{current}.arn}}"
    assert sorted(lb["target_group_arn"] for lb in service["load_balancer"]) == sorted(groups.values())


PATHS = {
    # The same shapes as test_paths.py: V2 link + internal ALB + bridge with dynamic host ports, and
    # V2 link + NLB + awsvpc IP targets.
    "v2_alb_bridge_dynamic_ports": dict(
        environment="albenv", service__name="shop", service__host_port=None, service__health_check_path="/health",
        service__desired_count=3, nlb={"type": "application", "subnets": None, "listener_port": 8000},
        vpc_link={"version": 2}, api__base_path="shop"),
    "v2_nlb_awsvpc_ip_targets": dict(
        environment="ipenv", service__name="ledger", service__host_port=None, service__network_mode="awsvpc",
        service__desired_count=3, vpc_link={"version": 2}, api__base_path="ledger"),
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_v2_paths_export_every_created_resource_once(exported, sandbox, tmp_path, path):
    """After a real apply of each V2 path: the V2 link, the runbook's security groups and everything else are
    imported exactly once; the integration names the V2 link and the load balancer by address."""
    from .conftest import write_params

    params_file = write_params(tmp_path, **PATHS[path])
    params = load_params(params_file)
    applied = run("apply", str(params_file))
    assert applied.exit_code == 0, applied.record.get("error")
    out = runbook_export(tmp_path / "out", str(params_file))
    assert out.returncode == 0, out.stderr
    parsed = parse(tmp_path / "out")
    expected = expected_ids(sandbox, params)
    assert expected["aws_apigatewayv2_vpc_link"] and expected["aws_security_group"]
    assert not expected["aws_api_gateway_vpc_link"]
    assert_imported_exactly(imports(parsed), expected)
    blocks = resources(parsed)
    assert sorted(a for a, _ in imports(parsed)) == sorted(blocks)
    (link_address,) = [a for a in blocks if a.startswith("aws_apigatewayv2_vpc_link.")]
    (lb_address,) = [a for a in blocks if a.startswith("aws_lb.")]
    groups = {f"${{{a}.id}}" for a in blocks if a.startswith("aws_security_group.")}
    assert set(blocks[link_address]["security_group_ids"]) <= groups
    (integration,) = [b for a, b in blocks.items() if a.startswith("aws_api_gateway_integration.")]
    assert integration["connection_id"] == f"${{{link_address}.id}}"
    assert integration["integration_target"] == f"${{{lb_address}.arn}}"
    lb, (tg,) = blocks[lb_address], [b for a, b in blocks.items() if a.startswith("aws_lb_target_group.")]
    if params.nlb.type == "application":
        assert lb["load_balancer_type"] == "application" and set(lb["security_groups"]) <= groups
        assert tg["health_check"][0]["path"] == "/health"
    else:
        (service,) = [b for a, b in blocks.items() if a.startswith("aws_ecs_service.")]
        assert tg["target_type"] == "ip"
        assert set(service["network_configuration"][0]["security_groups"]) <= groups
    assert "integration_target" in (tmp_path / "out" / "README.md").read_text()
