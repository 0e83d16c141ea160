"""VPC link finders: our V1 links (apigateway) and V2 links (apigatewayv2).

VPC link names are not unique: a link of our name not tagged as ours is not ours, and these finders leave it out."""

from __future__ import annotations

from vpclink_runbooks.names import Names

# apigatewayv2's VPC link calls are authorized as apigateway:GET on /v2/vpclinks paths.
PERMISSIONS = ["apigateway:GET"]


def owned_links(aws, names: Names) -> list[dict]:
    """Our V1 VPC links (any status)."""
    links = [v for page in aws.apigateway.get_paginator("get_vpc_links").paginate() for v in page["items"]]
    return [v for v in links if names.owns(v.get("tags"))]


def v2_view(link: dict) -> dict:
    """An apigatewayv2 link in the shape the rest of the runbook reads (id, name, status, statusMessage)."""
    return {"id": link["VpcLinkId"], "name": link["Name"], "status": link.get("VpcLinkStatus"),
            "statusMessage": link.get("VpcLinkStatusMessage", ""), "subnetIds": sorted(link.get("SubnetIds", [])),
            "securityGroupIds": sorted(link.get("SecurityGroupIds", [])), "tags": link.get("Tags", {}),
            "version": 2}


def owned_links_v2(aws, names: Names) -> list[dict]:
    """Our V2 VPC links (any status), in v2_view's shape."""
    links, token = [], None
    while True:
        page = aws.apigatewayv2.get_vpc_links(**({"NextToken": token} if token else {}))
        links += page.get("Items", [])
        token = page.get("NextToken")
        if not token:
            break
    return [v2_view(v) for v in links if names.owns(v.get("Tags"))]


def link(aws, names: Names, version: int) -> dict | None:
    """Our link of that version; if several (a crash mid-replace), the AVAILABLE one; None when there is none."""
    found = owned_links_v2(aws, names) if version == 2 else owned_links(aws, names)
    links = sorted(found, key=lambda v: (v.get("status") != "AVAILABLE", v["id"]))
    return links[0] if links else None
