"""The API Gateway VPC link: V1 (apigateway, targets the internal NLB) or V2 (apigatewayv2, network interfaces in
subnets with the runbook's own security group; the REST integration names the load balancer as integrationTarget).

The runner starts this step once 10_nlb has created the load balancer, while it provisions: a V1 link is created
only once the NLB is active (AWS accepts CreateVpcLink for a provisioning NLB, then FAILs the link: "NLB is not
in active state"), so its converge waits for that first; a V2 link needs only its subnets and security group."""

from __future__ import annotations

from vpclink_runbooks.aws import vpclinks, waits
from vpclink_runbooks.context import Context
from vpclink_runbooks.errors import StepFailed
from vpclink_runbooks.plan import Plan
from vpclink_runbooks.steps.load_balancer import find_load_balancer, find_security_group, link_security_group
from vpclink_runbooks.steps.load_balancer import wait_active as wait_load_balancer_active

# apigatewayv2's VPC link calls are authorized as apigateway:GET/POST/DELETE on /v2/vpclinks paths.
PERMISSIONS = ["apigateway:GET", "apigateway:POST", "apigateway:DELETE", "elasticloadbalancing:DescribeLoadBalancers",
               "elasticloadbalancing:DescribeTags", "ec2:DescribeSecurityGroups", "ec2:CreateSecurityGroup",
               "ec2:CreateTags"]
RECOVERY_V2 = ("a FAILED or INACTIVE V2 link cannot be fixed in place: check its subnets and security group, then "
               "run apply (or repair) to delete and recreate it")
RECOVERY = ("a FAILED VPC link cannot be fixed in place: check that the NLB is active and has no other "
            "endpoint service, then run apply (or repair) to delete and recreate the link")


def owned_links(ctx: Context) -> list[dict]:
    return vpclinks.owned_links(ctx.aws, ctx.names)


def owned_links_v2(ctx: Context) -> list[dict]:
    return vpclinks.owned_links_v2(ctx.aws, ctx.names)


def find_link(ctx: Context) -> dict | None:
    """Our link of the version params ask for; if several (a crash mid-replace), the AVAILABLE one."""
    return vpclinks.link(ctx.aws, ctx.names, ctx.params.vpc_link.version)


def _v2(ctx: Context):
    return ctx.aws.apigatewayv2


def link_subnets(ctx: Context, lb: dict | None) -> list[str]:
    """vpc_link.subnets, else the load balancer's subnets (the link's interfaces sit next to it)."""
    if ctx.params.vpc_link.subnets:
        return sorted(ctx.params.vpc_link.subnets)
    return sorted(az["SubnetId"] for az in (lb or {}).get("AvailabilityZones", []))


def converge(ctx: Context) -> Plan:
    if ctx.params.vpc_link.version == 2:
        return _converge_v2(ctx)
    return _converge_v1(ctx)


def _delete_v2_links(ctx: Context, plan: Plan, links: list[dict], why: str) -> None:
    for link in links:
        if link.get("status") == "DELETING":
            plan.add(f"VPC link V2 {link['name']} ({link['id']})", "none", "DELETING", None, "already being deleted")
        elif plan.add(f"VPC link V2 {link['name']} ({link['id']})", "delete", link.get("status"), None, why):
            _v2(ctx).delete_vpc_link(VpcLinkId=link["id"])
            waits.wait(_v2(ctx), "VpcLinkV2Deleted", f"VPC link {link['id']} deleted", VpcLinkId=link["id"])


def _converge_v2(ctx: Context) -> Plan:
    plan = Plan(apply=ctx.apply)
    names = ctx.names
    for old in owned_links(ctx):
        if plan.add(f"VPC link V1 {old['name']} ({old['id']})", "delete", old.get("status"), None,
                    "params ask for a V2 link; the V1 link would keep the NLB in use"):
            ctx.aws.apigateway.delete_vpc_link(vpcLinkId=old["id"])
            waits.wait(ctx.aws.apigateway, "VpcLinkDeleted", f"VPC link {old['id']} deleted", vpcLinkId=old["id"])
    lb = find_load_balancer(ctx)
    subnets = link_subnets(ctx, lb)
    group = find_security_group(ctx, names.link_security_group)
    group_id = group["GroupId"] if group else link_security_group(ctx, plan)
    keep, stale = None, []
    for link in sorted(owned_links_v2(ctx), key=lambda v: (v.get("status") != "AVAILABLE", v["id"])):
        healthy = (link.get("status") in ("AVAILABLE", "PENDING") and link["subnetIds"] == subnets
                   and link["securityGroupIds"] == [group_id])
        if healthy and keep is None:
            keep = link
            plan.add(f"VPC link V2 {link['name']}", "none", f"{link['status']} in {subnets}",
                     f"AVAILABLE in {subnets}", "exists")
        elif link.get("status") != "DELETING":
            stale.append(link)
    for link in stale:
        why = (f"{link.get('status')}: {link.get('statusMessage', '')}; {RECOVERY_V2}"
               if link.get("status") in ("FAILED", "INACTIVE") else
               "subnets or security group differ from params (a V2 link's cannot change)"
               if keep is None or link is not keep else "duplicate")
        _delete_v2_links(ctx, plan, [link], why)
    if keep is None:
        desired = f"V2 in {subnets or '(the load balancer subnets)'}, security group {names.link_security_group}"
        if plan.add(f"VPC link V2 {names.vpc_link}", "create", None, desired,
                    "a V2 link puts network interfaces in the VPC; the REST integration names the load balancer"):
            if lb is None or not subnets:
                raise StepFailed(f"load balancer {names.nlb} does not exist yet; run 10_nlb in apply mode first")
            _v2(ctx).create_vpc_link(Name=names.vpc_link, SubnetIds=subnets, SecurityGroupIds=[group_id],
                                     Tags=names.tags)
    return plan


def _converge_v1(ctx: Context) -> Plan:
    plan = Plan(apply=ctx.apply)
    old_v2 = owned_links_v2(ctx)
    if old_v2:
        _delete_v2_links(ctx, plan, old_v2, "params ask for a V1 link")
    api, names = ctx.aws.apigateway, ctx.names
    lb = find_load_balancer(ctx)
    lb_arn = lb["LoadBalancerArn"] if lb else None
    links = owned_links(ctx)
    keep = None
    for link in sorted(links, key=lambda v: (v.get("status") != "AVAILABLE", v["id"])):
        healthy = link.get("status") in ("AVAILABLE", "PENDING") and link.get("targetArns") == [lb_arn]
        if healthy and keep is None:
            keep = link
            plan.add(f"VPC link {link['name']}", "none", f"{link['status']} -> {names.nlb}",
                     f"AVAILABLE -> {names.nlb}", "exists")
            continue
        why = (f"FAILED: {link.get('statusMessage', '')}; {RECOVERY}" if link.get("status") == "FAILED"
               else "targets another load balancer" if link.get("targetArns") != [lb_arn] else "duplicate")
        if plan.add(f"VPC link {link['name']} ({link['id']})", "delete", link.get("status"), None, why):
            api.delete_vpc_link(vpcLinkId=link["id"])
            waits.wait(api, "VpcLinkDeleted", f"VPC link {link['id']} deleted", vpcLinkId=link["id"])
    if keep is None:
        if plan.add(f"VPC link {names.vpc_link}", "create", None, f"targets NLB {names.nlb}",
                    "API Gateway reaches private resources only through a VPC link to an NLB"):
            if lb_arn is None:
                raise StepFailed(f"NLB {names.nlb} does not exist yet; run 10_nlb in apply mode first")
            if lb["State"]["Code"] != "active":  # AWS FAILs a link created on an NLB that is not active yet
                wait_load_balancer_active(ctx)
            api.create_vpc_link(name=names.vpc_link, targetArns=[lb_arn], tags=names.tags,
                                description=f"{names.base}: API Gateway -> {names.nlb}")
    return plan


def wait_available(ctx: Context) -> str:
    link = find_link(ctx)
    if link is None:
        return "no VPC link yet (plan mode): nothing to wait for"
    if ctx.params.vpc_link.version == 2:
        what = f"VPC link V2 {link['name']} AVAILABLE"
        if (note := waits.would_wait(_v2(ctx), "VpcLinkV2Available", what)) is not None:
            return note
        try:
            seconds = waits.wait(_v2(ctx), "VpcLinkV2Available", what, VpcLinkId=link["id"])
        except StepFailed:
            current = vpclinks.v2_view(_v2(ctx).get_vpc_link(VpcLinkId=link["id"]))
            raise StepFailed(f"VPC link {link['id']} is {current['status']}: {current['statusMessage']}. "
                             f"{RECOVERY_V2}") from None
        return f"VPC link V2 {link['name']} ({link['id']}) is AVAILABLE after {seconds:.1f}s"
    what = f"VPC link {link['name']} AVAILABLE"
    if (note := waits.would_wait(ctx.aws.apigateway, "VpcLinkAvailable", what)) is not None:
        return note
    try:
        seconds = waits.wait(ctx.aws.apigateway, "VpcLinkAvailable", what, vpcLinkId=link["id"])
    except StepFailed:
        current = ctx.aws.apigateway.get_vpc_link(vpcLinkId=link["id"])
        raise StepFailed(f"VPC link {link['id']} is {current.get('status')}: {current.get('statusMessage', '')}. "
                         f"{RECOVERY}") from None
    return f"VPC link {link['name']} ({link['id']}) is AVAILABLE after {seconds:.1f}s"
