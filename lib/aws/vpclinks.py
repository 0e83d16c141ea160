"""VPC link finders: our V1 links (apigateway) and V2 links (apigatewayv2)."""

from __future__ import annotations

from vpclink_runbooks.context import Context


def owned_links(ctx: Context) -> list[dict]:
    links = [v for page in ctx.aws.apigateway.get_paginator("get_vpc_links").paginate() for v in page["items"]]
    return [v for v in links if ctx.names.owns(v.get("tags"))]


def v2_view(link: dict) -> dict:
    """An apigatewayv2 link in the shape the rest of the runbook reads (id, name, status, statusMessage)."""
    return {"id": link["VpcLinkId"], "name": link["Name"], "status": link.get("VpcLinkStatus"),
            "statusMessage": link.get("VpcLinkStatusMessage", ""), "subnetIds": sorted(link.get("SubnetIds", [])),
            "securityGroupIds": sorted(link.get("SecurityGroupIds", [])), "tags": link.get("Tags", {}),
            "version": 2}


def owned_links_v2(ctx: Context) -> list[dict]:
    links, token = [], None
    while True:
        page = _v2(ctx).get_vpc_links(
            **({"NextToken": token} if token else {}))
        links += page.get("Items", [])
        token = page.get("NextToken")
        if not token:
            break
    return [v2_view(v) for v in links if ctx.names.owns(v.get("Tags"))]


def find_link(ctx: Context) -> dict | None:
    """Our link of the version params ask for; if several (a crash mid-replace), the AVAILABLE one."""
    found = owned_links_v2(ctx) if ctx.params.vpc_link.version == 2 else owned_links(ctx)
    links = sorted(found, key=lambda v: (v.get("status") != "AVAILABLE", v["id"]))
    return links[0] if links else None


def _v2(ctx: Context):
    return ctx.aws.apigatewayv2
