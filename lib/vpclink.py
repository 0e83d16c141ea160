"""The API Gateway VPC link (V1) that targets the internal NLB."""

from __future__ import annotations

from . import waits
from .context import Context
from .errors import StepFailed
from .loadbalancer import find_load_balancer
from .plan import Plan

PERMISSIONS = ["apigateway:GET", "apigateway:POST", "apigateway:DELETE", "elasticloadbalancing:DescribeLoadBalancers",
               "elasticloadbalancing:DescribeTags"]
RECOVERY = ("a FAILED VPC link cannot be fixed in place: check that the NLB is active and has no other "
            "endpoint service, then run apply (or repair) to delete and recreate the link")


def owned_links(ctx: Context) -> list[dict]:
    links = [v for page in ctx.aws.apigateway.get_paginator("get_vpc_links").paginate() for v in page["items"]]
    return [v for v in links if ctx.names.owns(v.get("tags"))]


def find_link(ctx: Context) -> dict | None:
    """Our link: the one tagged for this environment; if several (a crash mid-replace), the AVAILABLE one."""
    links = sorted(owned_links(ctx), key=lambda v: (v.get("status") != "AVAILABLE", v["id"]))
    return links[0] if links else None


def converge(ctx: Context) -> Plan:
    plan = Plan(apply=ctx.apply)
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
            api.create_vpc_link(name=names.vpc_link, targetArns=[lb_arn], tags=names.tags,
                                description=f"{names.base}: API Gateway -> {names.nlb}")
    return plan


def wait_available(ctx: Context) -> str:
    link = find_link(ctx)
    if link is None:
        return "no VPC link yet (plan mode): nothing to wait for"
    try:
        seconds = waits.wait(ctx.aws.apigateway, "VpcLinkAvailable", f"VPC link {link['name']} AVAILABLE",
                             vpcLinkId=link["id"])
    except StepFailed:
        current = ctx.aws.apigateway.get_vpc_link(vpcLinkId=link["id"])
        raise StepFailed(f"VPC link {link['id']} is {current.get('status')}: {current.get('statusMessage', '')}. "
                         f"{RECOVERY}") from None
    return f"VPC link {link['name']} ({link['id']}) is AVAILABLE after {seconds:.1f}s"
