"""Pre-flight reads what the service's tasks need before any change: every secret ARN exists (metadata only), the
execution role exists and trusts ecs-tasks.amazonaws.com, an image in this account's ECR has its repository and
tag. A missing one refuses apply (exit 2) naming the secret, role or image, and nothing is changed."""

from __future__ import annotations

import json

import pytest

from vpclink_runbooks.aws import session as aws_mod
from vpclink_runbooks.aws import task_needs
from vpclink_runbooks.params import load_params
from vpclink_runbooks.run.runner import run

from .conftest import ROOT, write_params

LOCAL = ROOT / "params" / "local.yaml"


@pytest.fixture(scope="module")
def aws(sandbox):
    params = load_params(LOCAL)
    return aws_mod.Aws(aws_mod.make_session(params))


def _params(tmp_path, **changes):
    return load_params(write_params(tmp_path, **changes))


def _ssm(params, name):
    return f"arn:aws:ssm:{params.region}:{params.account_id}:parameter/{name}"


def test_the_seeded_world_holds_everything_the_local_tasks_need(aws):
    assert task_needs.missing(aws, load_params(LOCAL)) == []


def test_a_missing_ssm_parameter_is_named_with_its_field(aws, tmp_path):
    base = load_params(LOCAL)
    params = _params(tmp_path, service__secrets={"DB": _ssm(base, "orders/db"), "TOKEN": _ssm(base, "orders/nope")})
    [need] = task_needs.missing(aws, params)
    assert need.field == "service.secrets.TOKEN"
    assert "/orders/nope" in need.detail and _ssm(base, "orders/nope") in need.detail


def test_secrets_manager_secrets_are_described_never_read(sandbox, aws, tmp_path):
    base = load_params(LOCAL)
    sm = sandbox.session().client("secretsmanager")
    arn = sm.create_secret(Name="orders/api-key", SecretString='{"key": "v"}')["ARN"]
    doomed = sm.create_secret(Name="orders/old", SecretString="x")["ARN"]
    sm.delete_secret(SecretId=doomed, RecoveryWindowInDays=7)
    gone = f"arn:aws:secretsmanager:{base.region}:{base.account_id}:secret:orders/none-AbCdEf"
    params = _params(tmp_path, service__secrets={
        "KEY": f"{arn}:key::",  # ECS's JSON-key form: the secret is the first seven parts
        "OLD": doomed, "NONE": gone})
    aws.recorder.calls.clear()
    needs = {n.field: n for n in task_needs.missing(aws, params)}
    assert set(needs) == {"service.secrets.OLD", "service.secrets.NONE"}
    assert "scheduled for deletion" in needs["service.secrets.OLD"].detail
    assert gone in needs["service.secrets.NONE"].detail
    operations = {c["operation"] for c in aws.recorder.calls}
    assert "DescribeSecret" in operations and "GetSecretValue" not in operations


def test_the_execution_role_must_exist_and_trust_ecs_tasks(sandbox, aws, tmp_path):
    iam = sandbox.session().client("iam")
    ec2_trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName="orders-untrusted", AssumeRolePolicyDocument=json.dumps(ec2_trust))
    missing = _params(tmp_path, service__execution_role="orders-nope")
    [need] = task_needs.missing(aws, missing)
    assert need.field == "service.execution_role" and "role/orders-nope does not exist" in need.detail
    untrusted = _params(tmp_path, service__execution_role="orders-untrusted")
    [need] = task_needs.missing(aws, untrusted)
    assert "does not trust ecs-tasks.amazonaws.com" in need.detail and "orders-untrusted" in need.detail
    # AWS advises a condition on the account ECS assumes the role for: such a role trusts ECS tasks.
    conditioned = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole",
         "Condition": {"StringEquals": {"aws:SourceAccount": load_params(LOCAL).account_id}}}]}
    iam.create_role(RoleName="orders-conditioned", AssumeRolePolicyDocument=json.dumps(conditioned))
    assert task_needs.missing(aws, _params(tmp_path, service__execution_role="orders-conditioned")) == []
    # No secrets on EC2: the task definition carries no execution role, so none is read.
    unused = _params(tmp_path, service__execution_role="orders-nope", service__secrets={})
    assert task_needs.missing(aws, unused) == []


def test_an_image_of_this_accounts_ecr_must_have_its_repository_and_tag(aws, tmp_path):
    base = load_params(LOCAL)
    registry = f"{base.account_id}.dkr.ecr.{base.region}.amazonaws.com"
    [need] = task_needs.missing(aws, _params(tmp_path, service__image=f"{registry}/orders:9.9.9"))
    assert need.field == "service.image" and "orders has no image 9.9.9" in need.detail
    [need] = task_needs.missing(aws, _params(tmp_path, service__image=f"{registry}/nothing:1"))
    assert "repository nothing does not exist" in need.detail
    # Another registry (Docker Hub, another account's ECR) is not read.
    assert task_needs.missing(aws, _params(tmp_path, service__image="nginx:1.27")) == []
    assert task_needs.missing(aws, _params(
        tmp_path, service__image=f"999999999999.dkr.ecr.{base.region}.amazonaws.com/x:1")) == []


def test_an_execution_role_of_another_account_is_refused_by_params(tmp_path):
    from vpclink_runbooks.errors import ParamsError

    with pytest.raises(ParamsError, match=r"service.execution_role.*account"):
        _params(tmp_path, service__execution_role="arn:aws:iam::999999999999:role/ecsTaskExecutionRole")


def test_the_task_definition_uses_the_execution_role_of_params(tmp_path):
    from types import SimpleNamespace

    from vpclink_runbooks.errors import ParamsError
    from vpclink_runbooks.steps import ecs_service

    account = load_params(LOCAL).account_id
    with_path = f"arn:aws:iam::{account}:role/service-role/orders-exec"
    params = _params(tmp_path, service__execution_role=with_path)
    assert ecs_service._execution_role(SimpleNamespace(params=params)) == with_path
    assert task_needs.execution_role_name(params) == "service-role/orders-exec"
    named = _params(tmp_path, service__execution_role="orders-exec")
    assert ecs_service._execution_role(SimpleNamespace(params=named)) == f"arn:aws:iam::{account}:role/orders-exec"
    with pytest.raises(ParamsError, match=r"service.execution_role: 'service-role/x' is not valid; expected"):
        _params(tmp_path, service__execution_role="service-role/x")


@pytest.mark.notebooks
@pytest.mark.parametrize("changes, named", [
    ({"service__secrets": {"DB": "arn:aws:ssm:eu-west-2:123456789012:parameter/orders/missing"}},
     "parameter/orders/missing"),
    ({"service__execution_role": "orders-no-such-role"}, "role/orders-no-such-role"),
    ({"service__image": "123456789012.dkr.ecr.eu-west-2.amazonaws.com/orders:0.0.0-missing"},
     "orders has no image 0.0.0-missing"),
])
def test_apply_refuses_before_any_change_naming_what_is_missing(sandbox, tmp_path, changes, named):
    result = run("apply", str(write_params(tmp_path, **changes)))
    record = json.loads((result.run_dir / "run.json").read_text())
    assert result.exit_code == 2 and record["status"] == "refused", record.get("error")
    assert named in record["error"]
    assert record["changes"] == [] and record["failed_changes"] == []
    elbv2 = sandbox.session().client("elbv2")
    assert not [lb for lb in elbv2.describe_load_balancers()["LoadBalancers"]
                if lb["LoadBalancerName"].startswith("local-orders")]
