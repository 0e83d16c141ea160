"""Target health follows the network: security groups, instance state, health-check port/protocol, tasks; the
stand-ins that answer for running tasks; the NLB's choice of target."""

from __future__ import annotations

import http.client
import json
import time
import uuid

import boto3
import pytest
from botocore.config import Config

from vpclink_runbooks.sandbox import elbv2, network, standins
from vpclink_runbooks.sandbox.base import _elbv2
from vpclink_runbooks.sandbox.server import Delays, start_sandbox
from vpclink_runbooks.sandbox.world import WorldSpec

REGION = "eu-west-2"
ACCOUNT = "123456789012"
WAIT = {"Delay": 1, "MaxAttempts": 15}


@pytest.fixture(scope="module")
def sb():
    s = start_sandbox(delays=Delays(nlb_provisioning=0.2, vpc_link_pending=0.2, task_start=0.2, target_healthy=0.2),
                      world=WorldSpec())
    yield s
    s.stop()
    standins.stop_all()


def c(sb, service):
    return boto3.client(service, region_name=REGION, endpoint_url=sb.endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(retries={"mode": "standard"}))


class Chain:
    """A cluster of 2 instances (one per subnet) in their own group admitting 10000 from the VPC, an NLB with a
    TCP target group on 10000, and a service of 2 bridge tasks (host 10000 -> container 8080)."""

    def __init__(self, sb):
        w = sb.world
        self.ec2, self.ecs, self.elb = c(sb, "ec2"), c(sb, "ecs"), c(sb, "elbv2")
        self.cluster = f"h-{uuid.uuid4().hex[:6]}"
        self.cidr = self.ec2.describe_vpcs(VpcIds=[w["vpc_id"]])["Vpcs"][0]["CidrBlock"]
        self.sg = self.ec2.create_security_group(GroupName=self.cluster, Description="instances",
                                                 VpcId=w["vpc_id"])["GroupId"]
        self.rule = [{"IpProtocol": "tcp", "FromPort": 10000, "ToPort": 10000,
                      "IpRanges": [{"CidrIp": self.cidr}]}]
        self.ec2.authorize_security_group_ingress(GroupId=self.sg, IpPermissions=self.rule)
        self.ecs.create_cluster(clusterName=self.cluster)
        self.instances = []
        for subnet in w["subnet_ids"][:2]:
            inst = self.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet,
                                          SecurityGroupIds=[self.sg])["Instances"][0]
            doc = {"instanceId": inst["InstanceId"], "availabilityZone": inst["Placement"]["AvailabilityZone"],
                   "region": REGION, "privateIp": inst["PrivateIpAddress"]}
            self.ecs.register_container_instance(cluster=self.cluster, instanceIdentityDocument=json.dumps(doc))
            self.instances.append(inst["InstanceId"])
        self.lb = self.elb.create_load_balancer(Name=f"{self.cluster}-nlb", Type="network", Scheme="internal",
                                                Subnets=w["subnet_ids"][:2])["LoadBalancers"][0]["LoadBalancerArn"]
        self.tg = self.elb.create_target_group(Name=f"{self.cluster}-tg", Protocol="TCP", Port=10000,
                                               VpcId=w["vpc_id"], TargetType="instance")["TargetGroups"][0][
            "TargetGroupArn"]
        self.elb.create_listener(LoadBalancerArn=self.lb, Protocol="TCP", Port=80,
                                 DefaultActions=[{"Type": "forward", "TargetGroupArn": self.tg}])
        td = self.ecs.register_task_definition(
            family=f"{self.cluster}-orders", networkMode="bridge", requiresCompatibilities=["EC2"],
            containerDefinitions=[{"name": "app", "image": "orders:1", "cpu": 128, "memory": 128, "essential": True,
                                   "portMappings": [{"containerPort": 8080, "hostPort": 10000}]}],
        )["taskDefinition"]["taskDefinitionArn"]
        self.ecs.create_service(cluster=self.cluster, serviceName="orders", taskDefinition=td, desiredCount=2,
                                launchType="EC2", loadBalancers=[{"targetGroupArn": self.tg, "containerName": "app",
                                                                  "containerPort": 8080}])
        self.ecs.get_waiter("services_stable").wait(cluster=self.cluster, services=["orders"], WaiterConfig=WAIT)
        assert self.wait_for(lambda: self.states() == {i: ("healthy", None) for i in self.instances}), self.states()

    def states(self):
        hs = self.elb.describe_target_health(TargetGroupArn=self.tg)["TargetHealthDescriptions"]
        return {h["Target"]["Id"]: (h["TargetHealth"]["State"], h["TargetHealth"].get("Reason")) for h in hs}

    def tasks(self):
        arns = self.ecs.list_tasks(cluster=self.cluster, serviceName="orders")["taskArns"]
        return self.ecs.describe_tasks(cluster=self.cluster, tasks=arns)["tasks"] if arns else []

    def wait_for(self, pred, timeout=8.0):
        end = time.time() + timeout
        while time.time() < end:
            if pred():
                return True
            time.sleep(0.1)
        return False

    def all_are(self, state, reason):
        return self.wait_for(lambda: self.states() == {i: (state, reason) for i in self.instances})


def test_standin_answers_with_task_and_container_port(sb):
    ch = Chain(sb)
    task = next(t for t in ch.tasks() if t["containerInstanceArn"] and t["lastStatus"] == "RUNNING")
    inst = ch.ecs.describe_container_instances(cluster=ch.cluster, containerInstances=[task["containerInstanceArn"]])[
        "containerInstances"][0]["ec2InstanceId"]
    s = standins.for_target(ACCOUNT, REGION, inst, 10000)
    assert s is not None and s.task_arn == task["taskArn"] and s.container_port == 8080
    conn = http.client.HTTPConnection(*s.address, timeout=5)
    conn.request("POST", "/orders/7?x=1", body=b"{}", headers={"X-Probe": "yes"})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status == 200 and resp.getheader("x-sandbox-task") == task["taskArn"].rsplit("/", 1)[-1]
    assert body["task"] == task["taskArn"] and body["container_port"] == 8080
    assert (body["method"], body["path"], body["query"], body["headers"]["X-Probe"]) == ("POST", "/orders/7", "x=1",
                                                                                          "yes")


def test_revoked_host_port_rule_turns_targets_unhealthy_until_restored(sb):
    ch = Chain(sb)
    lb = _elbv2(ACCOUNT, REGION).load_balancers[ch.lb]
    assert network.lb_admitted(ACCOUNT, REGION, lb, ch.instances[0], 10000) is None
    ch.ec2.revoke_security_group_ingress(GroupId=ch.sg, IpPermissions=ch.rule)
    assert ch.all_are("unhealthy", "Target.FailedHealthChecks"), ch.states()
    reason = network.lb_admitted(ACCOUNT, REGION, lb, ch.instances[0], 10000)
    assert reason and ch.sg in reason and "TCP 10000" in reason
    # every target unhealthy: the NLB fails open and still routes to a target of the client's zone
    tg = _elbv2(ACCOUNT, REGION).target_groups[ch.tg]
    assert elbv2.choose_target(ACCOUNT, REGION, lb, tg, None) is not None
    ch.ec2.authorize_security_group_ingress(GroupId=ch.sg, IpPermissions=ch.rule)
    assert ch.all_are("healthy", None), ch.states()


def test_stopped_instance_is_unused_invalid_state_until_started(sb):
    ch = Chain(sb)
    ch.ec2.stop_instances(InstanceIds=[ch.instances[0]])
    states = ch.states()
    assert states[ch.instances[0]] == ("unused", "Target.InvalidState")
    assert states[ch.instances[1]] == ("healthy", None)
    lb = _elbv2(ACCOUNT, REGION).load_balancers[ch.lb]
    tg = _elbv2(ACCOUNT, REGION).target_groups[ch.tg]
    az1 = ch.ec2.describe_instances(InstanceIds=[ch.instances[1]])["Reservations"][0]["Instances"][0][
        "Placement"]["AvailabilityZone"]
    az0 = ch.ec2.describe_instances(InstanceIds=[ch.instances[0]])["Reservations"][0]["Instances"][0][
        "Placement"]["AvailabilityZone"]
    # cross-zone off: the stopped instance's zone has no target in use; the other zone's node answers
    assert elbv2.choose_target(ACCOUNT, REGION, lb, tg, az0) is None
    assert elbv2.choose_target(ACCOUNT, REGION, lb, tg, az1)["Id"] == ch.instances[1]
    assert elbv2.choose_target(ACCOUNT, REGION, lb, tg, None)["Id"] == ch.instances[1]
    ch.elb.modify_load_balancer_attributes(LoadBalancerArn=ch.lb, Attributes=[
        {"Key": "load_balancing.cross_zone.enabled", "Value": "true"}])
    assert elbv2.choose_target(ACCOUNT, REGION, lb, tg, az0)["Id"] == ch.instances[1]
    ch.ec2.start_instances(InstanceIds=[ch.instances[0]])
    assert ch.all_are("healthy", None), ch.states()


def test_health_check_port_nothing_listens_on_then_traffic_port(sb):
    ch = Chain(sb)
    ch.elb.modify_target_group(TargetGroupArn=ch.tg, HealthCheckPort="10001")
    assert ch.all_are("unhealthy", "Target.FailedHealthChecks"), ch.states()
    ch.elb.modify_target_group(TargetGroupArn=ch.tg, HealthCheckPort="traffic-port")
    assert ch.all_are("healthy", None), ch.states()


def test_http_health_check_path_and_matcher(sb):
    ch = Chain(sb)
    ch.elb.modify_target_group(TargetGroupArn=ch.tg, HealthCheckProtocol="HTTP", HealthCheckPath="/health",
                               Matcher={"HttpCode": "200-399"})
    assert ch.all_are("healthy", None), ch.states()
    ch.elb.modify_target_group(TargetGroupArn=ch.tg, Matcher={"HttpCode": "404"})
    assert ch.all_are("unhealthy", "Target.FailedHealthChecks"), ch.states()
    ch.elb.modify_target_group(TargetGroupArn=ch.tg, Matcher={"HttpCode": "200"})
    assert ch.all_are("healthy", None), ch.states()


def test_stopped_task_drains_its_target_and_the_replacement_is_healthy(sb):
    ch = Chain(sb)
    task = next(t for t in ch.tasks() if t["lastStatus"] == "RUNNING")
    inst = ch.ecs.describe_container_instances(cluster=ch.cluster, containerInstances=[task["containerInstanceArn"]])[
        "containerInstances"][0]["ec2InstanceId"]
    old = standins.for_target(ACCOUNT, REGION, inst, 10000)
    assert old is not None and old.task_arn == task["taskArn"]
    ch.ecs.stop_task(cluster=ch.cluster, task=task["taskArn"], reason="test")
    hs = ch.elb.describe_target_health(TargetGroupArn=ch.tg)["TargetHealthDescriptions"]
    drained = [h for h in hs if h["Target"]["Id"] == inst]
    assert drained and drained[0]["TargetHealth"]["State"] in ("draining", "initial")
    if drained[0]["TargetHealth"]["State"] == "draining":
        assert drained[0]["TargetHealth"]["Reason"] == "Target.DeregistrationInProgress"
    assert ch.all_are("healthy", None), ch.states()
    new = standins.for_target(ACCOUNT, REGION, inst, 10000)
    assert new is not None and new.task_arn != task["taskArn"]


def test_health_checks_start_when_the_nlb_is_active_not_at_registration(sb):
    """A target registered while its NLB provisions is `initial`/RegistrationInProgress until the NLB is active,
    then InitialHealthChecking for the whole target_healthy delay counted from then (AWS: registration completes
    and health checks start only on an active load balancer)."""
    from vpclink_runbooks.sandbox import behaviours

    w, elb, ec2 = sb.world, c(sb, "elbv2"), c(sb, "ec2")
    name = f"t-{uuid.uuid4().hex[:6]}"
    sg = ec2.create_security_group(GroupName=name, Description="t", VpcId=w["vpc_id"])["GroupId"]
    cidr = ec2.describe_vpcs(VpcIds=[w["vpc_id"]])["Vpcs"][0]["CidrBlock"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 10000, "ToPort": 10000, "IpRanges": [{"CidrIp": cidr}]}])
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=w["subnet_ids"][0],
                                 SecurityGroupIds=[sg])["Instances"][0]["InstanceId"]
    behaviours.install(Delays(nlb_provisioning=1.5, vpc_link_pending=0.2, task_start=0.2, target_healthy=1.5))
    try:
        lb = elb.create_load_balancer(Name=f"{name}-nlb", Type="network", Scheme="internal",
                                      Subnets=w["subnet_ids"][:1])["LoadBalancers"][0]["LoadBalancerArn"]
        started = time.monotonic()
        tg = elb.create_target_group(Name=f"{name}-tg", Protocol="TCP", Port=10000, VpcId=w["vpc_id"],
                                     TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
        elb.create_listener(LoadBalancerArn=lb, Protocol="TCP", Port=80,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
        elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": instance}])

        def state():
            h = elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"][0]["TargetHealth"]
            return h["State"], h.get("Reason")

        assert state() == ("initial", "Elb.RegistrationInProgress")
        elb.get_waiter("load_balancer_available").wait(LoadBalancerArns=[lb], WaiterConfig={"Delay": 0.1,
                                                                                            "MaxAttempts": 50})
        active = time.monotonic()
        # registered ~1.5 s ago, yet the checks only began with the NLB: still initial
        assert state() == ("initial", "Elb.InitialHealthChecking")
        elb.get_waiter("target_in_service").wait(TargetGroupArn=tg, WaiterConfig={"Delay": 0.1, "MaxAttempts": 80})
        healthy = time.monotonic()
        assert healthy - active >= 1.5 - 0.2 and healthy - started >= 3.0 - 0.2, (started, active, healthy)
    finally:
        behaviours.install(Delays(nlb_provisioning=0.2, vpc_link_pending=0.2, task_start=0.2, target_healthy=0.2))
