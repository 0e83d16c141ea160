"""Another team's world: seeded with plain boto3 into an empty sandbox, applied with `sandbox: false`."""

from __future__ import annotations

import json

import pytest
import yaml

from vpclink_runbooks.run.runner import run
from vpclink_runbooks.sandbox.world import WorldSpec, seed_world

from .conftest import ROOT

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def other_world(sandbox):
    spec = WorldSpec(region="ap-southeast-2", vpc_id="vpc-0f1e2d3c4b5a69788", vpc_cidr="172.20.0.0/16",
                     cluster="payments-cluster", az_count=3, instances_per_az=1,
                     cluster_security_group_name="payments-nodes", domain_name="gateway.payments.example.org",
                     other_api_name="ledger", other_base_path="ledger", other_stage="live",
                     ssm_parameters={"/billing/db": "postgres://billing"})  # the secret its tasks resolve
    return spec, seed_world(sandbox.session(spec.region), spec)


def test_apply_and_verify_another_teams_world(sandbox, other_world, tmp_path):
    spec, ids = other_world
    params = yaml.safe_load((ROOT / "params" / "local.yaml").read_text())
    params.update(environment="qa", sandbox=False, region=spec.region, vpc_id=spec.vpc_id, cluster=spec.cluster,
                  api={"domain_name": spec.domain_name, "base_path": "billing", "stage": "v1"})
    params["service"].update(name="billing", container_port=9000, host_port=18080, desired_count=3,
                             secrets={"DB": "arn:aws:ssm:ap-southeast-2:123456789012:parameter/billing/db"},
                             health_check_path="/healthz",
                             extra_ports=[{"container_port": 9100, "host_port": 18081, "expose": True},
                                          {"container_port": 9200, "host_port": 18082, "expose": False}])
    params["nlb"] = {"subnets": None, "listener_port": 443}
    path = tmp_path / "qa.yaml"
    path.write_text(yaml.safe_dump(params))

    applied = run("apply", str(path))
    record = json.loads((applied.run_dir / "run.json").read_text())
    assert applied.exit_code == 0, record.get("error")
    assert record["region"] == "ap-southeast-2"
    verified = run("verify", str(path))
    assert verified.exit_code == 0

    s = sandbox.session(spec.region)
    lb = s.client("elbv2").describe_load_balancers(Names=["qa-billing-nlb"])["LoadBalancers"][0]
    assert len(lb["AvailabilityZones"]) == 3
    listeners = s.client("elbv2").describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert sorted(lst["Port"] for lst in listeners) == [443, 18081]
    groups = {g["TargetGroupName"]: g for g in s.client("elbv2").describe_target_groups()["TargetGroups"]
              if g["TargetGroupName"].startswith("qa-billing-")}
    assert sorted(groups) == ["qa-billing-18080", "qa-billing-18081"]
    assert groups["qa-billing-18080"]["HealthCheckProtocol"] == "HTTP"
    assert groups["qa-billing-18080"]["HealthCheckPath"] == "/healthz"
    rules = [r for r in s.client("ec2").describe_security_group_rules()["SecurityGroupRules"]
             if any(t["Key"] == "runbook:environment" and t["Value"] == "qa" for t in r.get("Tags", []))]
    assert sorted({r["FromPort"] for r in rules}) == [18080, 18081, 18082]
    assert len(rules) == 3  # three host ports, each from the NLB's own group only
    assert all(r.get("ReferencedGroupInfo") and not r.get("CidrIpv4") for r in rules)
    mappings = s.client("apigateway").get_base_path_mappings(domainName=spec.domain_name)["items"]
    assert {m["basePath"] for m in mappings} == {"ledger", "billing"}
    svc = s.client("ecs").describe_services(cluster=spec.cluster, services=["billing"])["services"][0]
    assert svc["runningCount"] == 3
    assert sorted(lb["containerPort"] for lb in svc["loadBalancers"]) == [9000, 9100]
