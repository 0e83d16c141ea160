"""The AWS access layer's public finders (lib/aws/elbv2, ec2, ecs, apigateway, vpclinks) against a real sandbox:
each finds ours, answers None (or []) when nothing is there, and treats a resource of our name that is not
tagged as ours the one documented way: a single-resource finder raises errors.NotOurs, a list finder leaves
it out. Apply, verify's inventory, destroy and export then agree on which REST API and {proxy+} are ours."""

from __future__ import annotations

import pytest

from vpclink_runbooks import export as export_mod
from vpclink_runbooks.aws import apigateway, ec2, ecs, elbv2, vpclinks
from vpclink_runbooks.aws import session as aws_mod
from vpclink_runbooks.context import Context
from vpclink_runbooks.errors import NotOurs, StepFailed
from vpclink_runbooks.names import Names
from vpclink_runbooks.params import load_params
from vpclink_runbooks.steps import api as api_step
from vpclink_runbooks.steps import destroy

from .conftest import ROOT, write_params

LOCAL = ROOT / "params" / "local.yaml"


@pytest.fixture(scope="module")
def world(sandbox, tmp_path_factory):
    """Ours (tagged as params/local.yaml's runbook's), a twin environment's same-named but untagged resources,
    and a ghost environment that has nothing."""
    tmp = tmp_path_factory.mktemp("finders")
    params = load_params(LOCAL)
    twin = load_params(write_params(tmp, environment="twin", service__name="twinsvc"))
    ghost = load_params(write_params(tmp, environment="ghost", service__name="ghostsvc"))
    aws = aws_mod.connect(params)
    ours, twins = Names(params), Names(twin)
    s = sandbox.session()
    raw = {n: s.client(n) for n in ("elbv2", "ec2", "ecs", "apigateway", "apigatewayv2")}
    subnets = sorted(x["SubnetId"] for x in raw["ec2"].describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [params.vpc_id]}])["Subnets"])[:2]

    def lb(name: str, tags: list[dict]) -> dict:
        extra = {"Tags": tags} if tags else {}
        return raw["elbv2"].create_load_balancer(Name=name, Subnets=subnets, Scheme="internal", Type="network",
                                                 **extra)["LoadBalancers"][0]

    def tg(name: str, tags: list[dict]) -> dict:
        extra = {"Tags": tags} if tags else {}
        return raw["elbv2"].create_target_group(Name=name, Protocol="TCP", Port=8080, VpcId=params.vpc_id,
                                                TargetType="instance", **extra)["TargetGroups"][0]

    def group(name: str, tags: list[dict]) -> str:
        spec = [{"ResourceType": "security-group", "Tags": tags}] if tags else []
        return raw["ec2"].create_security_group(GroupName=name, Description=name, VpcId=params.vpc_id,
                                                TagSpecifications=spec)["GroupId"]

    our_lb, twin_lb = lb(ours.nlb, ours.tag_list()), lb(twins.nlb, [])
    our_tg = tg(ours.target_group(params.target_port), ours.tag_list())
    tg(twins.target_group(params.target_port), [])
    raw["elbv2"].create_listener(LoadBalancerArn=our_lb["LoadBalancerArn"], Protocol="TCP", Port=80,
                                 DefaultActions=[{"Type": "forward", "TargetGroupArn": our_tg["TargetGroupArn"]}])
    our_group, twin_group = group(ours.link_security_group, ours.tag_list()), group(twins.link_security_group, [])

    gw = raw["apigateway"]
    our_api = gw.create_rest_api(name=ours.rest_api, tags=ours.tags)
    twin_api = gw.create_rest_api(name=twins.rest_api)  # same name as the twin's, no tags
    gw.create_rest_api(name=ours.rest_api)  # our name, not tagged: not ours either
    resources = gw.get_resources(restApiId=our_api["id"])["items"]
    root = next(r for r in resources if r["path"] == "/")
    # A {proxy+} deeper in the tree first: it is not the one apply makes, and no finder takes it for it.
    other = gw.create_resource(restApiId=our_api["id"], parentId=root["id"], pathPart="other")
    gw.create_resource(restApiId=our_api["id"], parentId=other["id"], pathPart="{proxy+}")
    proxy = gw.create_resource(restApiId=our_api["id"], parentId=root["id"], pathPart="{proxy+}")
    gw.put_method(restApiId=our_api["id"], resourceId=proxy["id"], httpMethod="ANY", authorizationType="NONE")
    gw.put_integration(restApiId=our_api["id"], resourceId=proxy["id"], httpMethod="ANY", type="HTTP_PROXY",
                       integrationHttpMethod="ANY", uri="http://example.internal/{proxy}")
    deployment = gw.create_deployment(restApiId=our_api["id"], stageName=params.api.stage)

    task = raw["ecs"].register_task_definition(
        family=ours.task_family, containerDefinitions=[{"name": "c", "image": "nginx", "memory": 128}],
        tags=ours.tag_list("key", "value"))["taskDefinition"]
    raw["ecs"].register_task_definition(family=ours.task_family,  # a revision of our family, untagged
                                        containerDefinitions=[{"name": "c", "image": "nginx", "memory": 128}])
    raw["ecs"].create_service(cluster=params.cluster, serviceName=twins.ecs_service,
                              taskDefinition=task["taskDefinitionArn"], desiredCount=0)
    return {"params": params, "twin": twin, "ghost": ghost, "aws": aws, "ours": ours, "twins": twins,
            "ghosts": Names(ghost), "raw": raw, "lb": our_lb, "twin_lb": twin_lb, "tg": our_tg,
            "group": our_group, "twin_group": twin_group, "api": our_api, "twin_api": twin_api, "root": root,
            "proxy": proxy, "deployment": deployment, "task": task}


def test_load_balancer(world):
    aws, ours = world["aws"], world["ours"]
    assert elbv2.load_balancer(aws, ours)["LoadBalancerArn"] == world["lb"]["LoadBalancerArn"]
    assert elbv2.load_balancer(aws, world["ghosts"]) is None
    with pytest.raises(NotOurs, match="not tagged as this runbook's") as refused:
        elbv2.load_balancer(aws, world["twins"])
    assert refused.value.ident == world["twin_lb"]["LoadBalancerArn"]
    assert isinstance(refused.value, StepFailed), "a step that calls the finder refuses"


def test_target_groups_and_listeners(world):
    aws = world["aws"]
    assert [g["TargetGroupArn"] for g in elbv2.target_groups(aws, world["ours"])] == [world["tg"]["TargetGroupArn"]]
    assert elbv2.target_groups(aws, world["twins"]) == [], "an untagged group of the twin's name is left out"
    assert elbv2.target_groups(aws, world["ghosts"]) == []
    listeners = elbv2.listeners(aws, world["lb"]["LoadBalancerArn"])
    assert [li["Port"] for li in listeners] == [80]
    assert elbv2.listeners(aws, world["twin_lb"]["LoadBalancerArn"]) == []


def test_security_groups(world):
    aws, p = world["aws"], world["params"]
    ours = world["ours"]
    assert ec2.security_group(aws, ours, p.vpc_id, ours.link_security_group)["GroupId"] == world["group"]
    assert ec2.security_group(aws, ours, p.vpc_id, world["ghosts"].link_security_group) is None
    with pytest.raises(NotOurs) as refused:
        ec2.security_group(aws, world["twins"], p.vpc_id, world["twins"].link_security_group)
    assert refused.value.ident == world["twin_group"]
    assert [g["GroupId"] for g in ec2.security_groups(aws, ours, p.vpc_id, p.environment)] == [world["group"]]
    assert ec2.security_groups(aws, world["twins"], p.vpc_id, "twin") == []
    assert ec2.owned_rules(aws, ours, world["group"]) == []


def test_ecs_service_and_task_definitions(world):
    aws, p = world["aws"], world["params"]
    assert ecs.service(aws, world["ours"], p.cluster) is None, "no service of our name"
    assert ecs.services(aws, world["ours"], "no-such-cluster") is None
    with pytest.raises(NotOurs, match="ECS service"):
        ecs.service(aws, world["twins"], p.cluster)
    current = ecs.task_definition(aws, world["ours"])
    assert current["family"] == world["ours"].task_family and current["revision"] == 2
    assert ecs.task_definition(aws, world["ghosts"]) is None
    revisions = ecs.task_definition_revisions(aws, world["ours"])
    assert [td["revision"] for td in revisions] == [1, 2]
    assert [td["taskDefinitionArn"] for td in ecs.owned_task_definitions(aws, world["ours"])] == \
        [world["task"]["taskDefinitionArn"]], "the untagged revision is not ours"


def test_rest_api_and_its_proxy_resource(world):
    aws, p, ours = world["aws"], world["params"], world["ours"]
    api = apigateway.rest_api(aws, ours, p.api.domain_name, p.api.base_path)
    assert api["id"] == world["api"]["id"], "the untagged API of our name is not ours"
    assert apigateway.rest_api(aws, world["ghosts"], p.api.domain_name, p.api.base_path) is None
    assert [a["id"] for a in apigateway.owned_rest_apis(aws, ours)] == [world["api"]["id"]]
    assert apigateway.rest_api_by_id(aws, ours, api["id"])["id"] == api["id"]
    assert apigateway.rest_api_by_id(aws, ours, "nosuchapi") is None
    with pytest.raises(NotOurs):
        apigateway.rest_api_by_id(aws, ours, world["twin_api"]["id"])
    proxy, root = apigateway.proxy_resource(aws, api["id"])
    assert (proxy["id"], root["id"]) == (world["proxy"]["id"], world["root"]["id"]), "the {proxy+} under /"
    bare, _ = apigateway.proxy_resource(aws, world["twin_api"]["id"])
    assert bare is None
    assert apigateway.method(aws, api["id"], proxy["id"])["httpMethod"] == "ANY"
    assert apigateway.method(aws, api["id"], root["id"]) is None
    assert apigateway.integration(aws, api["id"], proxy["id"])["type"] == "HTTP_PROXY"
    other = next(r for r in world["raw"]["apigateway"].get_resources(restApiId=api["id"])["items"]
                 if r["path"] == "/other/{proxy+}")
    assert apigateway.method(aws, api["id"], other["id"]) is None
    stage = apigateway.stage(aws, api["id"], p.api.stage)
    assert stage["deploymentId"] == world["deployment"]["id"]
    assert apigateway.stage(aws, api["id"], "nostage") is None
    assert apigateway.deployment(aws, api["id"], stage["deploymentId"])["id"] == world["deployment"]["id"]


def test_base_path_mappings(world):
    aws, p = world["aws"], world["params"]
    assert apigateway.base_path_mapping(aws, p.api.domain_name, "no-such-path") is None
    assert apigateway.domain_mappings(aws, "no-such-domain.example.com") == []
    assert isinstance(apigateway.domain_mappings(aws, p.api.domain_name), list)


def test_vpc_links(world):
    aws, ours = world["aws"], world["ours"]
    gw = world["raw"]["apigateway"]
    gw.create_vpc_link(name=world["twins"].vpc_link, targetArns=[world["twin_lb"]["LoadBalancerArn"]])
    assert vpclinks.link(aws, world["twins"], 1) is None, "an untagged link of the twin's name is left out"
    assert vpclinks.link(aws, world["ghosts"], 2) is None
    made = gw.create_vpc_link(name=ours.vpc_link, targetArns=[world["lb"]["LoadBalancerArn"]], tags=ours.tags)
    assert vpclinks.link(aws, ours, 1)["id"] == made["id"]
    assert [v["id"] for v in vpclinks.owned_links(aws, ours)] == [made["id"]]
    assert vpclinks.owned_links_v2(aws, ours) == []


def test_apply_verify_destroy_and_export_agree_on_the_api(world):
    """The step, destroy and export find the same REST API and the same {proxy+} (the one under /)."""
    p = world["params"]
    ctx = Context(params=p, aws=world["aws"], names=world["ours"], mode="plan", identity={})
    api = api_step.find_rest_api(ctx)
    assert api["id"] == world["api"]["id"]
    plan = destroy.remove_api(ctx)
    deleted = [r.resource for r in plan.rows if r.action == "delete" and r.resource.startswith("REST API")]
    assert deleted == [f"REST API {world['ours'].rest_api} ({api['id']})"], "destroy removes exactly that API"
    d = export_mod.Discovery(ctx=ctx)
    d.found["aws_api_gateway_rest_api"] = export_mod.discover_rest_apis(d)
    assert [a["id"] for a in d.found["aws_api_gateway_rest_api"]] == [api["id"]]
    assert [r["id"] for r in export_mod.discover_proxy_resources(d)] == [world["proxy"]["id"]]
    converge = api_step.converge(ctx)
    resource = next(r for r in converge.rows if r.resource == "resource /{proxy+}")
    assert (resource.action, resource.current) == ("none", world["proxy"]["id"]), "apply keeps that {proxy+}"
