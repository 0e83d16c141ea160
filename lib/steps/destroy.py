"""Destroy: remove what apply created, found by the runbook's tags, in the order AWS allows.

Order: the custom domain's mapping and the REST API's stages first (traffic stops at the front door), then the
ECS service (scaled to 0 and drained, then deleted), its task definitions and the security group rules,
then the VPC link (AWS refuses to delete an NLB a link still uses, so we wait until it is gone; a V2
link goes before the load balancer its integration targets), then the listeners, target groups and the
load balancer, and last the security groups the runbook created (V2 link, ALB, awsvpc tasks), once no
rule references them and no network interface (link, load balancer or task) is in them. Every step
finds what exists by the runbook's tags, so a destroy that was interrupted, or one after a partial
apply, just does what is left; a second destroy finds nothing and changes nothing. Anything not tagged
as this environment's runbook's is left alone.

The REST API itself is deleted in the background while the rest is torn down, and `wait_rest_apis_gone` (the
last wait) joins it: API Gateway allows one DeleteRestApi per 30 s per account and region, so in a batch of
destroys each takes its turn (lib/aws/pacing.py) beside its own teardown instead of before it. Once its stages
are gone nothing refers to the VPC link through it.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

from botocore.exceptions import ClientError

from vpclink_runbooks.aws import apigateway as aws_apigateway
from vpclink_runbooks.aws import ec2 as aws_ec2
from vpclink_runbooks.aws import ecs as aws_ecs
from vpclink_runbooks.aws import elbv2 as aws_elbv2
from vpclink_runbooks.aws import waits
from vpclink_runbooks.context import Context
from vpclink_runbooks.errors import NotOurs
from vpclink_runbooks.plan import Plan
from vpclink_runbooks.steps.api import owned_rest_apis
from vpclink_runbooks.steps.load_balancer import owned_target_groups
from vpclink_runbooks.steps.vpc_link import owned_links, owned_links_v2

PERMISSIONS = [
    "apigateway:GET", "apigateway:DELETE",
    "ecs:DescribeServices", "ecs:UpdateService", "ecs:DeleteService", "ecs:ListTaskDefinitions",
    "ecs:DescribeTaskDefinition", "ecs:DeregisterTaskDefinition",
    "ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules", "ec2:RevokeSecurityGroupIngress",
    "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DeleteListener", "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:DeleteLoadBalancer", "ec2:DeleteSecurityGroup",
]
NOT_OURS = "not tagged as this runbook's: left alone"
LIVE = ("ACTIVE", "DRAINING")  # an ECS service destroy still has to act on or wait for (not INACTIVE)


# ---- API Gateway ---------------------------------------------------------------------------------------

def remove_api(ctx: Context) -> Plan:
    """The base path mappings to our REST APIs, their stages, then the APIs (deployments go with them)."""
    plan = Plan(apply=ctx.apply)
    gw, a = ctx.aws.apigateway, ctx.params.api
    apis = owned_rest_apis(ctx)
    ours = {api["id"] for api in apis}
    mappings = aws_apigateway.domain_mappings(ctx.aws, a.domain_name)
    # Only mappings to our own APIs: the other teams' paths on the shared domain are never touched.
    for mapping in [m for m in mappings if m["restApiId"] in ours]:
        if plan.add(f"base path mapping {a.domain_name}/{mapping['basePath']}", "delete",
                    f"API {mapping['restApiId']} stage {mapping.get('stage')}", None,
                    "first stop the custom domain sending requests to this runbook's API"):
            gw.delete_base_path_mapping(domainName=a.domain_name, basePath=mapping["basePath"])
    if not any(m["restApiId"] in ours for m in mappings):
        other = next((m for m in mappings if m["basePath"] == a.base_path), None)
        plan.add(f"base path mapping {a.domain_name}/{a.base_path}", "none",
                 f"API {other['restApiId']}" if other else None, None, NOT_OURS if other else "not found")
    for api in apis:
        stages = gw.get_stages(restApiId=api["id"]).get("item", [])
        for stage in stages:
            if plan.add(f"stage {stage['stageName']} of API {api['id']}", "delete",
                        f"deployment {stage.get('deploymentId')}", None, "the stage stops serving the API"):
                gw.delete_stage(restApiId=api["id"], stageName=stage["stageName"])
        if plan.add(f"REST API {api['name']} ({api['id']})", "delete", api["id"], None,
                    "its resources, method, integration and deployments go with it (in the background, while "
                    "the rest is torn down)"):
            _in_background(ctx, "rest_apis", f"REST API {api['id']}", gw.delete_rest_api, restApiId=api["id"])
    if not apis:
        plan.add(f"REST API {ctx.names.rest_api}", "none", None, None, "not found")
    return plan


def _in_background(ctx: Context, key: str, what: str, call, **kwargs) -> None:
    """Start an AWS call in a thread of its own; the wait named after `key` joins it."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=key)
    future: Future = executor.submit(call, **kwargs)
    executor.shutdown(wait=False)
    ctx.pending.setdefault(key, []).append((what, future))


def wait_rest_apis_gone(ctx: Context) -> str:
    """The REST API deletions remove_api started: done, or their error raised here."""
    started = ctx.pending.pop("rest_apis", [])
    if not started:
        return "no REST API deletion pending"
    t0 = time.monotonic()
    for _, future in started:
        future.result()  # the deletion's own error (AccessDenied, throttled beyond the retries, ...)
    return f"{', '.join(what for what, _ in started)} deleted (waited {time.monotonic() - t0:.1f}s more)"


# ---- ECS -----------------------------------------------------------------------------------------------

def _service(ctx: Context) -> tuple[dict | None, str]:
    """(our service unless INACTIVE, why not when None)."""
    services = aws_ecs.services(ctx.aws, ctx.names, ctx.params.cluster)
    if services is None:
        return None, f"cluster {ctx.params.cluster} not found"
    try:
        service = aws_ecs.live_service(ctx.names, services, ctx.params.cluster, LIVE)
    except NotOurs:
        return None, f"exists but is {NOT_OURS}"
    return (service, "") if service else (None, "not found")


def scale_down_service(ctx: Context) -> Plan:
    """Desired count 0: ECS stops the tasks and deregisters them from the target group (draining)."""
    plan = Plan(apply=ctx.apply)
    name = f"ECS service {ctx.names.ecs_service}"
    service, why_not = _service(ctx)
    if service is None:
        plan.add(name, "none", None, None, why_not)
    elif service["desiredCount"] > 0 and service["status"] == "ACTIVE":
        if plan.add(name, "update", f"desired {service['desiredCount']}, running {service['runningCount']}",
                    "desired 0", "ECS refuses to delete a service that still runs tasks; drain it first"):
            ctx.aws.ecs.update_service(cluster=ctx.params.cluster, service=ctx.names.ecs_service, desiredCount=0)
    else:
        plan.add(name, "none", f"desired 0, running {service['runningCount']}", "desired 0", "already scaled to 0")
    return plan


def wait_service_drained(ctx: Context) -> str:
    service, why_not = _service(ctx)
    if service is None:
        return f"ECS service {ctx.names.ecs_service}: {why_not}; nothing to wait for"
    return waits.waited(ctx.aws.ecs, "services_stable", f"ECS service {ctx.names.ecs_service} drained to 0 tasks",
                        f"ECS service {ctx.names.ecs_service} runs no task",
                        cluster=ctx.params.cluster, services=[ctx.names.ecs_service])


def remove_service(ctx: Context) -> Plan:
    plan = Plan(apply=ctx.apply)
    name = f"ECS service {ctx.names.ecs_service}"
    service, why_not = _service(ctx)
    if service is None:
        plan.add(name, "none", None, None, why_not)
    elif service["status"] == "DRAINING":
        plan.add(name, "none", "DRAINING", None, "already being deleted")
    elif plan.add(name, "delete", f"desired {service['desiredCount']}, running {service['runningCount']}", None,
                  "drained; deleting it releases the target group"):
        ctx.aws.ecs.delete_service(cluster=ctx.params.cluster, service=ctx.names.ecs_service)
    return plan


def wait_service_gone(ctx: Context) -> str:
    if not any(s.get("status") != "INACTIVE" for s in aws_ecs.services(ctx.aws, ctx.names, ctx.params.cluster) or []):
        return f"ECS service {ctx.names.ecs_service} is gone (INACTIVE or never created)"
    return waits.waited(ctx.aws.ecs, "services_inactive", f"ECS service {ctx.names.ecs_service} INACTIVE",
                        f"ECS service {ctx.names.ecs_service} is INACTIVE",
                        cluster=ctx.params.cluster, services=[ctx.names.ecs_service])


def deregister_task_definitions(ctx: Context) -> Plan:
    """Every ACTIVE revision of our family that carries our tags (ECS keeps them as INACTIVE, unusable)."""
    plan = Plan(apply=ctx.apply)
    family = ctx.names.task_family
    revisions = aws_ecs.task_definition_revisions(ctx.aws, ctx.names)
    for td in revisions:
        label = f"task definition {family}:{td['revision']}"
        if not ctx.names.owns(td["tags"]):
            plan.add(label, "none", "ACTIVE", None, NOT_OURS)
        elif plan.add(label, "delete", "ACTIVE", "INACTIVE", "deregistered: nothing can start it again"):
            ctx.aws.ecs.deregister_task_definition(taskDefinition=td["taskDefinitionArn"])
    if not revisions:
        plan.add(f"task definition {family}", "none", None, None, "no ACTIVE revision")
    return plan


def revoke_security_group_rules(ctx: Context) -> Plan:
    """The host-port ingress rules we tagged, in any security group of the VPC."""
    plan = Plan(apply=ctx.apply)
    revoke: dict[str, list[str]] = {}
    for rule in aws_ec2.owned_rules_in_vpc(ctx.aws, ctx.names, ctx.params.vpc_id):
        source = rule.get("CidrIpv4") or (rule.get("ReferencedGroupInfo") or {}).get("GroupId")
        ports = f"{rule['FromPort']}" if rule["FromPort"] == rule["ToPort"] else f"{rule['FromPort']}-{rule['ToPort']}"
        if plan.add(f"{rule['GroupId']} ingress tcp:{ports} from {source}", "delete",
                    "allow", None, "the port no longer needs to be open to the load balancer"):
            revoke.setdefault(rule["GroupId"], []).append(rule["SecurityGroupRuleId"])
    if not plan.rows:
        plan.add("security group rules", "none", None, None, "none tagged as this runbook's")
    for group_id, rule_ids in sorted(revoke.items()):
        ctx.aws.ec2.revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=rule_ids)
    return plan


# ---- VPC link ------------------------------------------------------------------------------------------

def remove_vpc_links(ctx: Context) -> Plan:
    plan = Plan(apply=ctx.apply)
    for link in owned_links_v2(ctx):
        label = f"VPC link V2 {link['name']} ({link['id']})"
        if link.get("status") == "DELETING":
            plan.add(label, "none", "DELETING", None, "already being deleted")
        elif plan.add(label, "delete", link.get("status"), None,
                      "its network interfaces keep its security group in use; it goes before the load balancer"):
            ctx.aws.apigatewayv2.delete_vpc_link(VpcLinkId=link["id"])
    links = owned_links(ctx)
    for link in links:
        label = f"VPC link {link['name']} ({link['id']})"
        if link.get("status") == "DELETING":
            plan.add(label, "none", "DELETING", None, "already being deleted")
        elif plan.add(label, "delete", link.get("status"), None,
                      "AWS refuses to delete an NLB while a VPC link targets it"):
            ctx.aws.apigateway.delete_vpc_link(vpcLinkId=link["id"])
    if not links and not [r for r in plan.rows if r.resource.startswith("VPC link V2")]:
        plan.add(f"VPC link {ctx.names.vpc_link}", "none", None, None, "not found")
    return plan


def wait_vpc_links_gone(ctx: Context) -> str:
    links = owned_links(ctx)
    links_v2 = owned_links_v2(ctx)
    if not links and not links_v2:
        return "no VPC link of this runbook's is left"
    done = [waits.waited(ctx.aws.apigatewayv2, "VpcLinkV2Deleted", f"VPC link V2 {link['id']} deleted",
                         f"VPC link V2 {link['id']} gone", VpcLinkId=link["id"]) for link in links_v2]
    done += [waits.waited(ctx.aws.apigateway, "VpcLinkDeleted", f"VPC link {link['id']} deleted",
                          f"VPC link {link['id']} gone", vpcLinkId=link["id"]) for link in links]
    return "; ".join(done)


# ---- NLB -----------------------------------------------------------------------------------------------

def _load_balancer(ctx: Context, name: str | None = None) -> tuple[dict | None, str]:
    """(our load balancer, why not when None): found by its name, and ours only if its tags say so."""
    try:
        lb = aws_elbv2.load_balancer(ctx.aws, ctx.names, name)
    except NotOurs:
        return None, f"exists but is {NOT_OURS}"
    return (lb, "") if lb else (None, "not found")


def _load_balancers(ctx: Context) -> list[dict]:
    """Ours under any name it may have had (NLB or ALB: load_balancer.type can change between applies)."""
    return [lb for name in ctx.names.load_balancer_names for lb in [_load_balancer(ctx, name)[0]] if lb]


def remove_load_balancer(ctx: Context) -> Plan:
    """Listeners (they forward to the target groups), target groups, then the NLB."""
    plan = Plan(apply=ctx.apply)
    elbv2, names = ctx.aws.elbv2, ctx.names
    lb, why_not = _load_balancer(ctx)
    others = [other for other in _load_balancers(ctx) if other["LoadBalancerName"] != names.nlb]
    listeners = [li for one in [lb, *others] if one
                 for li in aws_elbv2.listeners(ctx.aws, one["LoadBalancerArn"])]
    for listener in listeners:
        if plan.add(f"listener {listener['Protocol']} :{listener['Port']}", "delete", "exists", None,
                    "on this runbook's load balancer"):
            elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
    groups = owned_target_groups(ctx)
    for tg in groups:
        if plan.add(f"target group {tg['TargetGroupName']}", "delete", f"TCP :{tg['Port']}", None,
                    "no listener or service uses it any more"):
            elbv2.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])
    if not groups:
        plan.add(f"target groups {names.base}-*", "none", None, None, "none tagged as this runbook's")
    for other in others:
        if plan.add(f"load balancer {other['LoadBalancerName']}", "delete", other["State"]["Code"], None,
                    "ours, from an apply with another load_balancer.type"):
            elbv2.delete_load_balancer(LoadBalancerArn=other["LoadBalancerArn"])
    if lb is None:
        plan.add(f"NLB {names.nlb}", "none", None, None, why_not)
    elif plan.add(f"{'ALB' if lb['Type'] == 'application' else 'NLB'} {names.nlb}", "delete", lb["State"]["Code"],
                  None, "the last piece of the chain"):
        elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    return plan


def wait_load_balancer_gone(ctx: Context) -> str:
    lb, why_not = _load_balancer(ctx)
    if lb is None and why_not != "not found":
        return f"NLB {ctx.names.nlb}: {why_not}; nothing to wait for"
    what = f"NLB {ctx.names.nlb} deleted"
    if (note := waits.would_wait(ctx.aws.elbv2, "load_balancers_deleted", what)) is not None:
        return note if lb is not None else f"NLB {ctx.names.nlb}: not found; nothing to wait for"
    # By name: AWS may list a deleted NLB for a while; the waiter succeeds once it is not found.
    seconds = waits.wait(ctx.aws.elbv2, "load_balancers_deleted", what, Names=[ctx.names.nlb])
    return f"NLB {ctx.names.nlb} is gone after {seconds:.1f}s"


# ---- security groups the runbook created -------------------------------------------------------------------

def remove_security_groups(ctx: Context) -> Plan:
    """Our groups (V2 link, ALB, tasks), after their rules, the link, the load balancer and the tasks are gone.

    A group another group's rule references, or a network interface still uses (AWS releases a deleted
    load balancer's or link's interfaces a little later), is refused with DependencyViolation; those are
    retried until the interfaces are released, and the groups that reference each other are emptied first.
    """
    plan = Plan(apply=ctx.apply)
    groups = aws_ec2.security_groups(ctx.aws, ctx.names, ctx.params.vpc_id, ctx.params.environment)
    if not groups:
        plan.add("security groups", "none", None, None, "none tagged as this runbook's")
        return plan
    ids = {g["GroupId"] for g in groups}
    for group in groups:  # rules between our own groups (ALB from link, tasks from ALB) go first
        refs = [p for p in group.get("IpPermissions", []) if any(u.get("GroupId") in ids
                                                                 for u in p.get("UserIdGroupPairs", []))]
        if refs and plan.add(f"{group['GroupId']} rules referencing our groups", "delete", len(refs), None,
                             "a group cannot be deleted while another group's rule references it"):
            ctx.aws.ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=refs)
    pending = []
    for group in groups:
        if plan.add(f"security group {group['GroupName']} ({group['GroupId']})", "delete", "exists", None,
                    "created by the runbook; nothing uses it any more"):
            pending.append(group)
    deadline = time.monotonic() + 300
    while pending:
        left = []
        for group in pending:
            try:
                ctx.aws.ec2.delete_security_group(GroupId=group["GroupId"])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "DependencyViolation" or time.monotonic() > deadline:
                    raise
                left.append(group)
        pending = left
        if pending:
            time.sleep(2)
    return plan

