"""API Gateway (REST) finders: our REST API, its {proxy+} resource, method and integration, the domain's base
path mappings."""

from __future__ import annotations

from botocore.exceptions import ClientError

from vpclink_runbooks.context import Context

PROXY_PATH = "{proxy+}"


def owned_rest_apis(ctx: Context) -> list[dict]:
    """Every REST API tagged as this environment's runbook's, oldest first."""
    apis = [a for page in ctx.aws.apigateway.get_paginator("get_rest_apis").paginate() for a in page["items"]
            if ctx.names.owns(a.get("tags"))]
    return sorted(apis, key=lambda a: (str(a.get("createdDate", "")), a["id"]))


def mapped_api_id(ctx: Context) -> str | None:
    a = ctx.params.api
    try:
        return ctx.aws.apigateway.get_base_path_mapping(domainName=a.domain_name, basePath=a.base_path)["restApiId"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
        return None


def our_apis(ctx: Context) -> tuple[dict | None, list[dict]]:
    """(the API to keep, duplicates). Two APIs of ours only exist after runs that overlapped or crashed
    between creating an API and finding it again; keep the one the domain maps to, else the oldest."""
    apis = [a for a in owned_rest_apis(ctx) if a["name"] == ctx.names.rest_api]
    if len(apis) <= 1:
        return (apis[0] if apis else None), []
    mapped = mapped_api_id(ctx)
    keep = next((a for a in apis if a["id"] == mapped), apis[0])
    return keep, [a for a in apis if a is not keep]


def find_rest_api(ctx: Context) -> dict | None:
    return our_apis(ctx)[0]


def proxy_resource(ctx: Context, api_id: str) -> tuple[dict | None, dict]:
    resources = [r for page in ctx.aws.apigateway.get_paginator("get_resources").paginate(restApiId=api_id)
                 for r in page["items"]]
    root = next(r for r in resources if r["path"] == "/")
    proxy = next((r for r in resources if r.get("pathPart") == PROXY_PATH and r.get("parentId") == root["id"]), None)
    return proxy, root


def get_integration(ctx: Context, api_id: str, resource_id: str) -> dict | None:
    try:
        return ctx.aws.apigateway.get_integration(restApiId=api_id, resourceId=resource_id, httpMethod="ANY")
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
        return None


def has_method(ctx: Context, api_id: str, resource_id: str) -> bool:
    try:
        ctx.aws.apigateway.get_method(restApiId=api_id, resourceId=resource_id, httpMethod="ANY")
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
        return False


def find_rest_api_by_id(ctx: Context, api_id: str) -> bool:
    try:
        api = ctx.aws.apigateway.get_rest_api(restApiId=api_id)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
        return False
    return ctx.names.owns(api.get("tags"))


def domain_mappings(ctx: Context) -> list[dict]:
    try:
        return [m for page in ctx.aws.apigateway.get_paginator("get_base_path_mappings").paginate(
            domainName=ctx.params.api.domain_name) for m in page.get("items", [])]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
        return []
