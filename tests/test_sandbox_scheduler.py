"""The sandbox's ECS scheduler: placement with fixed host ports, targets, rolling deployments."""

from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest
from botocore.config import Config

from vpclink_runbooks.sandbox.server import Delays, start_sandbox
from vpclink_runbooks.sandbox.world import WorldSpec

REGION = "eu-west-2"
WAIT = {"Delay": 1, "MaxAttempts": 15}
PORT_EVENT = "is already using a port required by your task"


@pytest.fixture(scope="module")
def sb():
    s = start_sandbox(delays=Delays(nlb_provisioning=0.2, vpc_link_pending=0.2, task_start=0.2, target_healthy=0.2),
                      world=WorldSpec())
    yield s
    s.stop()


def c(sb, service):
    return boto3.client(service, region_name=REGION, endpoint_url=sb.endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(retries={"mode": "standard"}))


def admit_vpc(ec2, world) -> None:
    """The instances' group admits the test ports from the VPC, so the NLB's health checks reach the tasks."""
    cidr = ec2.describe_vpcs(VpcIds=[world["vpc_id"]])["Vpcs"][0]["CidrBlock"]
    try:
        ec2.authorize_security_group_ingress(GroupId=world["security_group_id"], IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 10000, "ToPort": 10001, "IpRanges": [{"CidrIp": cidr}]}])
    except ec2.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] != "InvalidPermission.Duplicate":
            raise


class Env:
    """A fresh cluster of `n` instances (one per private subnet) behind a fresh NLB + TCP target group."""

    def __init__(self, sb, n=2, used_ports=None):
        self.sb, w = sb, sb.world
        self.ec2, self.ecs, self.elb = c(sb, "ec2"), c(sb, "ecs"), c(sb, "elbv2")
        self.cluster = f"c-{uuid.uuid4().hex[:6]}"
        self.ecs.create_cluster(clusterName=self.cluster)
        self.instances, self.cis = [], []
        admit_vpc(self.ec2, w)
        for i in range(n):
            subnet = w["subnet_ids"][i % len(w["subnet_ids"])]
            inst = self.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet,
                                          SecurityGroupIds=[w["security_group_id"]])["Instances"][0]
            doc = {"instanceId": inst["InstanceId"], "availabilityZone": inst["Placement"]["AvailabilityZone"],
                   "region": REGION, "privateIp": inst["PrivateIpAddress"]}
            ci = self.ecs.register_container_instance(cluster=self.cluster, instanceIdentityDocument=json.dumps(doc))
            self.instances.append(inst["InstanceId"])
            self.cis.append(ci["containerInstance"]["containerInstanceArn"])
        for idx, ports in (used_ports or {}).items():
            fam = f"{self.cluster}-side"
            self.ecs.register_task_definition(family=fam, networkMode="bridge", containerDefinitions=[
                {"name": "s", "image": "busybox", "memory": 16,
                 "portMappings": [{"containerPort": p, "hostPort": p} for p in ports]}])
            self.ecs.start_task(cluster=self.cluster, taskDefinition=fam, containerInstances=[self.cis[idx]])
        lb = self.elb.create_load_balancer(Name=f"{self.cluster}-nlb", Type="network", Scheme="internal",
                                           Subnets=w["subnet_ids"])["LoadBalancers"][0]
        self.tg = self.elb.create_target_group(Name=f"{self.cluster}-tg", Protocol="TCP", Port=10000,
                                               VpcId=w["vpc_id"], TargetType="instance")["TargetGroups"][0][
            "TargetGroupArn"]
        self.elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=80,
                                 DefaultActions=[{"Type": "forward", "TargetGroupArn": self.tg}])

    def taskdef(self, host_port, family="orders"):
        return self.ecs.register_task_definition(
            family=f"{self.cluster}-{family}", networkMode="bridge", requiresCompatibilities=["EC2"],
            containerDefinitions=[{"name": "app", "image": "orders:1", "cpu": 128, "memory": 128, "essential": True,
                                   "portMappings": [{"containerPort": 8080, "hostPort": host_port,
                                                     "protocol": "tcp"}]}],
        )["taskDefinition"]["taskDefinitionArn"]

    def service(self, td, desired, **kw):
        return self.ecs.create_service(
            cluster=self.cluster, serviceName="orders", taskDefinition=td, desiredCount=desired, launchType="EC2",
            loadBalancers=[{"targetGroupArn": self.tg, "containerName": "app", "containerPort": 8080}], **kw,
        )["service"]

    def describe(self):
        return self.ecs.describe_services(cluster=self.cluster, services=["orders"])["services"][0]

    def tasks(self):
        arns = self.ecs.list_tasks(cluster=self.cluster, serviceName="orders")["taskArns"]
        return self.ecs.describe_tasks(cluster=self.cluster, tasks=arns)["tasks"] if arns else []

    def health(self):
        return self.elb.describe_target_health(TargetGroupArn=self.tg)["TargetHealthDescriptions"]

    def stable(self):
        self.ecs.get_waiter("services_stable").wait(cluster=self.cluster, services=["orders"], WaiterConfig=WAIT)

    def wait_for(self, pred, timeout=6.0):
        end = time.time() + timeout
        while time.time() < end:
            if pred():
                return True
            time.sleep(0.1)
        return False


def test_two_tasks_on_distinct_instances_registered_and_healthy(sb):
    e = Env(sb, 2)
    td = e.taskdef(10000)
    e.service(td, 2, deploymentConfiguration={"maximumPercent": 100, "minimumHealthyPercent": 50})
    tasks = e.tasks()
    assert len(tasks) == 2 and {t["lastStatus"] for t in tasks} == {"PENDING"}
    e.stable()
    svc = e.describe()
    assert (svc["runningCount"], svc["pendingCount"], svc["desiredCount"]) == (2, 0, 2)
    assert svc["deployments"][0]["rolloutState"] == "COMPLETED"
    assert svc["events"][0]["message"] == "(service orders) has reached a steady state."
    tasks = e.tasks()
    assert {t["lastStatus"] for t in tasks} == {"RUNNING"} and {t["desiredStatus"] for t in tasks} == {"RUNNING"}
    assert len({t["containerInstanceArn"] for t in tasks}) == 2
    assert all(t["group"] == "service:orders" and t["taskDefinitionArn"] == td for t in tasks)
    assert all(t["containers"][0]["networkBindings"][0]["hostPort"] == 10000 for t in tasks)
    assert e.wait_for(lambda: {h["TargetHealth"]["State"] for h in e.health()} == {"healthy"})
    hs = e.health()
    assert sorted(h["Target"]["Id"] for h in hs) == sorted(e.instances)
    assert {h["Target"]["Port"] for h in hs} == {10000}
    cis = e.ecs.describe_container_instances(cluster=e.cluster, containerInstances=e.cis)["containerInstances"]
    for ci in cis:
        assert ci["runningTasksCount"] == 1
        ports = next(r for r in ci["remainingResources"] if r["name"] == "PORTS")["stringSetValue"]
        assert "10000" in ports


def test_desired_three_on_two_instances_leaves_one_unplaced(sb):
    e = Env(sb, 2)
    e.service(e.taskdef(10000), 3)
    assert e.wait_for(lambda: e.describe()["runningCount"] == 2)
    svc = e.describe()
    assert svc["runningCount"] == 2 and svc["pendingCount"] == 0
    port_events = [ev for ev in svc["events"] if PORT_EVENT in ev["message"]]
    assert len(port_events) == 1
    assert port_events[0]["message"].startswith("(service orders) was unable to place a task because no container "
                                                "instance met all of its requirements. The closest matching "
                                                "(container-instance ")
    assert svc["deployments"][0]["rolloutState"] == "IN_PROGRESS"


def test_host_port_already_used_on_one_instance(sb):
    e = Env(sb, 2, used_ports={1: [10000]})
    e.service(e.taskdef(10000), 2)
    assert e.wait_for(lambda: e.describe()["runningCount"] == 1)
    time.sleep(0.3)
    tasks = e.tasks()
    assert len(tasks) == 1 and tasks[0]["containerInstanceArn"] == e.cis[0]
    assert sum(PORT_EVENT in ev["message"] for ev in e.describe()["events"]) == 1


def test_dynamic_host_port(sb):
    e = Env(sb, 1)
    e.service(e.taskdef(0), 2)
    e.stable()
    ports = sorted(t["containers"][0]["networkBindings"][0]["hostPort"] for t in e.tasks())
    assert ports == [32768, 32769]
    assert e.wait_for(lambda: sorted(h["Target"]["Port"] for h in e.health()) == [32768, 32769])


def test_rolling_update_moves_targets_to_new_port(sb):
    e = Env(sb, 2)
    e.service(e.taskdef(10000), 2, deploymentConfiguration={"maximumPercent": 100, "minimumHealthyPercent": 50})
    e.stable()
    td2 = e.taskdef(10001)
    upd = e.ecs.update_service(cluster=e.cluster, service="orders", taskDefinition=td2)["service"]
    assert upd["taskDefinition"] == td2 and len(upd["deployments"]) == 2
    e.stable()
    tasks = e.tasks()
    assert len(tasks) == 2 and {t["taskDefinitionArn"] for t in tasks} == {td2}
    assert len({t["containerInstanceArn"] for t in tasks}) == 2
    assert e.wait_for(lambda: {(h["Target"]["Port"], h["TargetHealth"]["State"]) for h in e.health()}
                      == {(10001, "healthy")})
    stopped = e.ecs.list_tasks(cluster=e.cluster, desiredStatus="STOPPED")["taskArns"]
    assert len(stopped) == 2


def test_stuck_deployment_with_fixed_port_and_default_percentages(sb):
    e = Env(sb, 2)
    e.service(e.taskdef(10000), 2)  # defaults: maximumPercent 200, minimumHealthyPercent 100
    e.stable()
    e.ecs.update_service(cluster=e.cluster, service="orders", taskDefinition=e.taskdef(10000), forceNewDeployment=True)
    time.sleep(0.5)
    svc = e.describe()
    assert len(svc["deployments"]) == 2 and svc["runningCount"] == 2
    assert PORT_EVENT in svc["events"][0]["message"]


def test_scale_to_zero_and_delete_deregisters(sb):
    e = Env(sb, 2)
    e.service(e.taskdef(10000), 2)
    e.stable()
    e.ecs.update_service(cluster=e.cluster, service="orders", desiredCount=0)
    e.stable()
    assert e.tasks() == []
    assert e.wait_for(lambda: e.health() == [])
    e.ecs.delete_service(cluster=e.cluster, service="orders")
    assert e.describe()["status"] == "INACTIVE"


def test_stopped_instance_makes_target_unused(sb):
    e = Env(sb, 2)
    e.service(e.taskdef(10000), 2)
    e.stable()
    assert e.wait_for(lambda: {h["TargetHealth"]["State"] for h in e.health()} == {"healthy"})
    e.ec2.stop_instances(InstanceIds=[e.instances[0]])
    states = {h["Target"]["Id"]: h["TargetHealth"] for h in e.health()}
    assert states[e.instances[0]]["State"] == "unused"  # AWS: a stopped instance is not health-checked
    assert states[e.instances[0]]["Reason"] == "Target.InvalidState"
    assert states[e.instances[1]]["State"] == "healthy"


def test_target_in_disabled_az_is_unused(sb):
    e = Env(sb, 2)
    lb = e.elb.create_load_balancer(Name=f"{e.cluster}-one", Type="network", Scheme="internal",
                                    Subnets=[sb.world["subnet_ids"][0]])["LoadBalancers"][0]
    tg = e.elb.create_target_group(Name=f"{e.cluster}-one", Protocol="TCP", Port=10000, VpcId=sb.world["vpc_id"])[
        "TargetGroups"][0]["TargetGroupArn"]
    e.elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    e.elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": i, "Port": 10000} for i in e.instances])
    hs = {h["Target"]["Id"]: h["TargetHealth"] for h in
          e.elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]}
    assert hs[e.instances[1]]["State"] == "unused" and hs[e.instances[1]]["Reason"] == "Target.NotInUse"
    assert hs[e.instances[0]]["State"] == "initial"
