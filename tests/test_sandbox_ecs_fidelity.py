"""The sandbox's ECS fails as AWS does: tasks whose secret or image is missing stop with AWS's reason, an execution
role ECS cannot assume starts no task, a deleted service drains and leaves ListServices, a new container instance
gets the tasks a service lacks; verify names the hop and the secret or image."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from vpclink_runbooks import sandbox_link
from vpclink_runbooks.params import load_params
from vpclink_runbooks.run.runner import run

from .conftest import ROOT
from .lifecycle import LOCAL, record

pytestmark = pytest.mark.notebooks

REGION = "eu-west-2"
ACCOUNT = "123456789012"
CLUSTER = "local-ecs"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/orders:1.4.2"


def _until(fn, timeout=15.0):
    """Poll `fn` (each call is an API call, which is what advances the sandbox) until it returns something true."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {fn.__name__}")


@pytest.fixture(scope="module")
def ecs(sandbox):
    return sandbox.session(REGION).client("ecs")


@pytest.fixture(scope="module")
def applied(sandbox, ecs):
    """The seeded world holds what local.yaml's tasks resolve (secret, ECR image, execution role): apply is green."""
    result = run("apply", LOCAL)
    assert result.exit_code == 0, record(result).get("error")
    [arn] = ecs.list_services(cluster=CLUSTER)["serviceArns"]
    return arn.split("/")[-1]


def _service(ecs, name, cluster=CLUSTER):
    return ecs.describe_services(cluster=cluster, services=[name])["services"][0]


def _revision(ecs, service, **container_changes):
    """A new revision of the service's task definition with `container_changes`, registered with plain boto3."""
    td = ecs.describe_task_definition(taskDefinition=_service(ecs, service)["taskDefinition"])["taskDefinition"]
    container = {**td["containerDefinitions"][0], **container_changes}
    keep = {k: td[k] for k in ("family", "networkMode", "executionRoleArn", "requiresCompatibilities") if td.get(k)}
    keep.update(container_changes.pop("_td", {}))
    container.pop("_td", None)
    return td["taskDefinitionArn"], ecs.register_task_definition(
        **keep, containerDefinitions=[container])["taskDefinition"]["taskDefinitionArn"]


def _failed_task(ecs, service, td_arn, cluster=CLUSTER):
    def failed():
        arns = ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="STOPPED")["taskArns"]
        tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
        return next((t for t in tasks if t["taskDefinitionArn"] == td_arn and t.get("stopCode") == "TaskFailedToStart"),
                    None)
    return _until(failed)


def _restore(ecs, service, td_arn):
    ecs.update_service(cluster=CLUSTER, service=service, taskDefinition=td_arn)
    ecs.get_waiter("services_stable").wait(cluster=CLUSTER, services=[service],
                                           WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def _starts_check(result):
    rec = record(result)
    return next(c for c in rec["checks"] if c["id"] == "task_definition.starts")


def test_a_missing_secret_stops_the_task_as_the_ec2_agent_says_and_verify_names_it(applied, ecs):
    missing = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/orders/rotated-away"
    before, broken = _revision(ecs, applied, secrets=[{"name": "CONNECTION_STRING", "valueFrom": missing}])
    ecs.update_service(cluster=CLUSTER, service=applied, taskDefinition=broken)
    task = _failed_task(ecs, applied, broken)
    reason = f"Fetching secret data from SSM Parameter Store in {REGION}: invalid parameters: {missing}"
    assert task["lastStatus"] == "STOPPED" and task["stoppedReason"] == reason
    assert task["containers"][0]["reason"] == reason and "exitCode" not in task["containers"][0]
    verify = run("verify", LOCAL)
    assert verify.exit_code != 0
    check = _starts_check(verify)
    assert check["status"] == "fail" and check["hop"] == "task_definition" and missing in check["detail"]
    assert "secret" in check["remedy"]
    # ECS keeps trying: replacement tasks start (throttled) and stop the same way, and the events say so
    _until(lambda: len([a for a in ecs.list_tasks(cluster=CLUSTER, serviceName=applied,
                                                  desiredStatus="STOPPED")["taskArns"]]) >= 3, timeout=30)
    unstable = f"(service {applied}) is unable to consistently start tasks successfully."
    _until(lambda: any(e["message"] == unstable for e in _service(ecs, applied)["events"]), timeout=30)
    _restore(ecs, applied, before)
    assert _starts_check(run("verify", LOCAL))["status"] == "pass"


def test_a_missing_ecr_tag_stops_the_task_with_cannot_pull_and_verify_names_the_image(applied, ecs):
    image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/orders:9.9.9"
    before, broken = _revision(ecs, applied, image=image)
    ecs.update_service(cluster=CLUSTER, service=applied, taskDefinition=broken)
    task = _failed_task(ecs, applied, broken)
    assert task["stoppedReason"] == (f"CannotPullContainerError: Error response from daemon: manifest for {image} "
                                     "not found: manifest unknown: Requested image not found")
    check = _starts_check(run("verify", LOCAL))
    assert check["status"] == "fail" and check["hop"] == "task_definition" and image in check["detail"]
    _restore(ecs, applied, before)


def test_an_execution_role_ecs_cannot_assume_starts_no_task(applied, ecs, sandbox):
    iam = sandbox.session(REGION).client("iam")
    iam.create_role(RoleName="untrusting", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    role = f"arn:aws:iam::{ACCOUNT}:role/untrusting"
    before, broken = _revision(ecs, applied, _td={"executionRoleArn": role})
    ecs.update_service(cluster=CLUSTER, service=applied, taskDefinition=broken)
    message = (f"(service {applied}) failed to launch a task with (error ECS was unable to assume the role '{role}' "
               "that was provided for this task. Please verify that the role being passed has the proper trust "
               "relationship and permissions and that your IAM user has permissions to pass this role.).")
    _until(lambda: any(e["message"] == message for e in _service(ecs, applied)["events"]))
    tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=ecs.list_tasks(cluster=CLUSTER, serviceName=applied)[
        "taskArns"])["tasks"]
    assert all(t["taskDefinitionArn"] != broken for t in tasks)
    check = _starts_check(run("verify", LOCAL))
    assert check["status"] == "fail" and role in check["detail"]
    _restore(ecs, applied, before)


@pytest.fixture(scope="module")
def fargate(sandbox, ecs):
    """A cluster of our own for raw Fargate services (no container instance needed)."""
    cluster = f"fidelity-{uuid.uuid4().hex[:6]}"
    ecs.create_cluster(clusterName=cluster)
    network = {"awsvpcConfiguration": {"subnets": sandbox.world["subnet_ids"], "assignPublicIp": "DISABLED",
                                       "securityGroups": [sandbox.world["security_group_id"]]}}

    def service(image="public.ecr.aws/docker/library/nginx:latest", secrets=(), desired=1):
        name = f"svc-{uuid.uuid4().hex[:6]}"
        container = {"name": "app", "image": image, "memory": 128, "essential": True, "secrets": list(secrets)}
        td = ecs.register_task_definition(
            family=name, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
            executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole",
            containerDefinitions=[container])["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=td, desiredCount=desired,
                           launchType="FARGATE", networkConfiguration=network)
        return name, td

    return cluster, service


def test_fargate_words_the_failures_as_fargate_does(ecs, fargate):
    cluster, service = fargate
    missing = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/nope"
    name, td = service(image=IMAGE, secrets=[{"name": "X", "valueFrom": missing}])
    assert _failed_task(ecs, name, td, cluster)["stoppedReason"] == (
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
        f"unable to retrieve secrets from ssm: service call has been retried 1 time(s): invalid ssm parameters: "
        f"{missing}")
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:orders/gone-AbCdEf"
    name, td = service(image=IMAGE, secrets=[{"name": "X", "valueFrom": secret}])
    assert _failed_task(ecs, name, td, cluster)["stoppedReason"] == (
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
        f"unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch secret {secret} "
        "from secrets manager: ResourceNotFoundException: Secrets Manager can't find the specified secret.")
    image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/no-such-repo:1"
    name, td = service(image=image)
    assert _failed_task(ecs, name, td, cluster)["stoppedReason"] == (
        f"CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref {image}: "
        f"{image}: not found")
    # an image outside this account's ECR always pulls; so does this account's seeded image
    for ok_image in ("public.ecr.aws/docker/library/nginx:latest", IMAGE):
        name, _ = service(image=ok_image)
        _until(lambda n=name: _service(ecs, n, cluster)["runningCount"] == 1)


def test_a_deleted_service_drains_leaves_list_services_and_its_name_is_refused_until_inactive(ecs, fargate):
    cluster, service = fargate
    name, td = service()
    _until(lambda: _service(ecs, name, cluster)["runningCount"] == 1)
    assert ecs.delete_service(cluster=cluster, service=name, force=True)["service"]["status"] == "DRAINING"
    assert not any(a.endswith(f"/{name}") for a in ecs.list_services(cluster=cluster)["serviceArns"])
    with pytest.raises(ClientError) as refused:
        ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=td, desiredCount=1, launchType="FARGATE",
                           networkConfiguration=_service(ecs, name, cluster)["networkConfiguration"])
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    assert refused.value.response["Error"]["Message"] == "Unable to Start a service that is still Draining."
    ecs.get_waiter("services_inactive").wait(cluster=cluster, services=[name], WaiterConfig={"Delay": 1,
                                                                                            "MaxAttempts": 10})
    assert not any(a.endswith(f"/{name}") for a in ecs.list_services(cluster=cluster)["serviceArns"])


@pytest.mark.parametrize("path", sorted((ROOT / "params").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_world_for_each_params_file_holds_its_tasks_secrets_and_ecr_image(path):
    params = load_params(path)
    spec = sandbox_link.world_spec_for(params)
    wanted = {v.split(":parameter", 1)[1] for v in params.service.secrets.values() if ":ssm:" in v}
    assert wanted <= set(spec.ssm_parameters)
    repo_tag = params.service.image.split("/", 1)[1]
    assert spec.ecr_images == ([repo_tag] if params.service.image.startswith(
        f"{params.account_id}.dkr.ecr.{params.region}.") else [])
    assert spec.execution_role == "ecsTaskExecutionRole"


def _instance(sandbox, ecs, cluster, subnet):
    ec2 = sandbox.session(REGION).client("ec2")
    inst = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet,
                             SecurityGroupIds=[sandbox.world["security_group_id"]])["Instances"][0]
    return inst, _register(ecs, cluster, inst)


def _register(ecs, cluster, inst):
    doc = {"instanceId": inst["InstanceId"], "availabilityZone": inst["Placement"]["AvailabilityZone"],
           "region": REGION, "privateIp": inst["PrivateIpAddress"]}
    return ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=json.dumps(doc))[
        "containerInstance"]["containerInstanceArn"]


def test_a_container_instance_registered_later_gets_the_task_the_service_lacks(sandbox, ecs):
    cluster = f"grow-{uuid.uuid4().hex[:6]}"
    ecs.create_cluster(clusterName=cluster)
    subnets = sandbox.world["subnet_ids"]
    _instance(sandbox, ecs, cluster, subnets[0])
    td = ecs.register_task_definition(family=cluster, networkMode="bridge", containerDefinitions=[
        {"name": "app", "image": "busybox", "memory": 64, "portMappings": [{"containerPort": 8080, "hostPort": 10500}]}
    ])["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=cluster, serviceName="grow", taskDefinition=td, desiredCount=2,
                       placementConstraints=[{"type": "distinctInstance"}])
    _until(lambda: _service(ecs, "grow", cluster)["runningCount"] == 1)
    assert any("unable to place a task" in e["message"] for e in _service(ecs, "grow", cluster)["events"])
    second, ci = _instance(sandbox, ecs, cluster, subnets[1])
    _until(lambda: _service(ecs, "grow", cluster)["runningCount"] == 2)
    # deregistered (its task orphaned, so replaced where possible) and registered again: it gets a task again
    ecs.deregister_container_instance(cluster=cluster, containerInstance=ci, force=True)
    _until(lambda: _service(ecs, "grow", cluster)["runningCount"] == 1)
    ci = _register(ecs, cluster, second)
    _until(lambda: _service(ecs, "grow", cluster)["runningCount"] == 2)
    on_new = ecs.list_tasks(cluster=cluster, serviceName="grow", containerInstance=ci)["taskArns"]
    assert len(on_new) == 1


def test_after_destroy_no_service_of_ours_is_listed_and_apply_creates_it_again(applied, ecs):
    destroyed = run("destroy", LOCAL, yes=True)
    assert destroyed.exit_code == 0, record(destroyed).get("error")
    assert not any(a.endswith(f"/{applied}") for a in ecs.list_services(cluster=CLUSTER)["serviceArns"])
    again = run("apply", LOCAL)
    assert again.exit_code == 0, record(again).get("error")
    assert any(a.endswith(f"/{applied}") for a in ecs.list_services(cluster=CLUSTER)["serviceArns"])
    assert _service(ecs, applied)["status"] == "ACTIVE"
