"""API Gateway: the service's REST API, {proxy+} ANY HTTP_PROXY over the VPC link, stage, base path mapping."""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from vpclink_runbooks.aws import apigateway as aws_apigateway
from vpclink_runbooks.aws.apigateway import PROXY_PATH
from vpclink_runbooks.context import Context
from vpclink_runbooks.errors import NotOurs, PreflightRefused, StepFailed
from vpclink_runbooks.plan import Plan
from vpclink_runbooks.steps.load_balancer import find_load_balancer
from vpclink_runbooks.steps.vpc_link import find_link

PERMISSIONS = ["apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH", "apigateway:DELETE",
               "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTags"]
STAGE_VARIABLE = "vpcLinkId"
FINGERPRINT_PREFIX = "vpclink-runbooks integration "
# API Gateway's default (and, without a quota increase, maximum) integration timeout; verify checks it.
INTEGRATION_TIMEOUT_MS = 29000


def owned_rest_apis(ctx: Context) -> list[dict]:
    """Every REST API tagged as this environment's runbook's, oldest first."""
    return aws_apigateway.owned_rest_apis(ctx.aws, ctx.names)


def _our_apis(ctx: Context) -> tuple[dict | None, list[dict]]:
    a = ctx.params.api
    return aws_apigateway.our_apis(ctx.aws, ctx.names, a.domain_name, a.base_path)


def find_rest_api(ctx: Context) -> dict | None:
    """Our REST API (the one apply keeps: see aws.apigateway.our_apis)."""
    return _our_apis(ctx)[0]


def find_rest_api_by_id(ctx: Context, api_id: str) -> bool:
    """Whether the REST API of that id exists and is ours."""
    try:
        return aws_apigateway.rest_api_by_id(ctx.aws, ctx.names, api_id) is not None
    except NotOurs:
        return False


def desired_integration(ctx: Context, nlb_dns: str, link_id: str | None = None, lb_arn: str | None = None) -> dict:
    """V1: connectionId from the stage variable. V2: the link id itself plus integrationTarget, the load
    balancer ARN (a V2 link is not tied to one load balancer; the integration says which)."""
    desired = {
        "type": "HTTP_PROXY", "httpMethod": "ANY",
        "uri": f"http://{nlb_dns}:{ctx.params.listener_port}/{{proxy}}",
        "connectionType": "VPC_LINK", "connectionId": f"${{stageVariables.{STAGE_VARIABLE}}}",
        "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"},
        "timeoutInMillis": INTEGRATION_TIMEOUT_MS,
    }
    if ctx.params.vpc_link.version == 2:
        desired["connectionId"] = link_id or "<VPC link V2 id>"
        desired["integrationTarget"] = lb_arn or f"<{ctx.names.nlb} ARN>"
    return desired


def fingerprint(integration: dict) -> str:
    """What the stage must have been deployed with; kept in the deployment description."""
    keys = ("type", "httpMethod", "uri", "connectionType", "connectionId", "requestParameters")
    fields = {k: integration.get(k) for k in keys}
    if integration.get("integrationTarget"):
        fields["integrationTarget"] = integration["integrationTarget"]
    blob = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _integration_differs(current: dict | None, desired: dict) -> list[str]:
    if current is None:
        return ["missing"]
    return [k for k, v in desired.items() if str(current.get(k)) != str(v)]


def converge(ctx: Context) -> Plan:
    plan = Plan(apply=ctx.apply)
    lb = find_load_balancer(ctx)
    link = find_link(ctx)
    nlb_dns = lb["DNSName"] if lb else f"<{ctx.names.nlb} DNS name>"
    link_id = link["id"] if link else "<VPC link id>"
    desired = desired_integration(ctx, nlb_dns, link["id"] if link else None, lb["LoadBalancerArn"] if lb else None)
    new: set[str] = set()  # what this converge created: nothing below it exists yet, so it is not looked up
    api = _ensure_api(ctx, plan, new)
    proxy, integration = _ensure_proxy(ctx, plan, api, new)
    _ensure_integration(ctx, plan, api, proxy, integration, desired, lb_found=lb is not None,
                        link_found=link is not None)
    _ensure_stage(ctx, plan, api, desired, link_id, new)
    _ensure_mapping(ctx, plan, api)
    return plan


def _ensure_api(ctx: Context, plan: Plan, new: set[str]) -> dict | None:
    """Our REST API (created when missing; duplicates an interrupted run left are deleted)."""
    gw, names = ctx.aws.apigateway, ctx.names
    api, duplicates = _our_apis(ctx)
    for extra in duplicates:
        if plan.add(f"REST API {extra['name']} ({extra['id']})", "delete", extra["id"], None,
                    f"a duplicate of {api['id']} left by an interrupted run; the custom domain does not map it"):
            gw.delete_rest_api(restApiId=extra["id"])
    if api is None:
        if plan.add(f"REST API {names.rest_api}", "create", None, "REGIONAL",
                    "the service gets its own API, mapped into the shared custom domain"):
            api = gw.create_rest_api(name=names.rest_api, endpointConfiguration={"types": ["REGIONAL"]},
                                     tags=names.tags, description=f"{names.base} via VPC link to {names.nlb}")
            new.add("api")
    else:
        plan.add(f"REST API {names.rest_api}", "none", api["id"], "REGIONAL", "exists")
    return api


def _ensure_proxy(ctx: Context, plan: Plan, api: dict | None, new: set[str]) -> tuple[dict | None, dict | None]:
    """The /{proxy+} resource under the API's root and its ANY method; (the resource, its integration)."""
    gw = ctx.aws.apigateway
    proxy = None
    if api is not None:
        proxy, root = aws_apigateway.proxy_resource(ctx.aws, api["id"])
        if proxy is None and plan.add(f"resource /{PROXY_PATH}", "create", None, "/{proxy+}",
                                      "forwards every path below the base path"):
            proxy = gw.create_resource(restApiId=api["id"], parentId=root["id"], pathPart=PROXY_PATH)
            new.add("proxy")
        elif proxy is not None:
            plan.add(f"resource /{PROXY_PATH}", "none", proxy["id"], "/{proxy+}", "exists")
    else:
        plan.add(f"resource /{PROXY_PATH}", "create", None, "/{proxy+}", "forwards every path below the base path")

    # An integration belongs to a method: where there is one, the method exists (one read, not two).
    integration = aws_apigateway.integration(ctx.aws, api["id"], proxy["id"]) \
        if proxy is not None and "proxy" not in new else None
    if proxy is not None and integration is None and (
            "proxy" in new or aws_apigateway.method(ctx.aws, api["id"], proxy["id"]) is None):
        if plan.add("method ANY /{proxy+}", "create", None, "ANY, path parameter proxy", "any HTTP method"):
            gw.put_method(restApiId=api["id"], resourceId=proxy["id"], httpMethod="ANY", authorizationType="NONE",
                          requestParameters={"method.request.path.proxy": True})
    elif proxy is None:
        plan.add("method ANY /{proxy+}", "create", None, "ANY, path parameter proxy", "any HTTP method")
    return proxy, integration


def _ensure_integration(ctx: Context, plan: Plan, api: dict | None, proxy: dict | None, integration: dict | None,
                        desired: dict, *, lb_found: bool, link_found: bool) -> None:
    """ANY /{proxy+} is HTTP_PROXY to the load balancer listener through the VPC link."""
    names = ctx.names
    differs = _integration_differs(integration, desired)
    if not differs:
        plan.add("integration ANY /{proxy+}", "none", desired["uri"], desired["uri"], "up to date")
        return
    if plan.add("integration ANY /{proxy+}", "create" if integration is None else "update",
                "-" if integration is None else {k: integration.get(k) for k in differs},
                f"HTTP_PROXY {desired['uri']} via VPC link {desired['connectionId']}"
                + (f", integrationTarget {desired['integrationTarget']}" if "integrationTarget" in desired else ""),
                "the integration points at the load balancer listener through the VPC link"):
        if not lb_found:
            raise StepFailed(f"load balancer {names.nlb} does not exist yet; run 10_nlb in apply mode first")
        if not link_found and "integrationTarget" in desired:
            raise StepFailed(f"VPC link {names.vpc_link} does not exist yet; run 20_vpc_link in apply mode first")
        extra = {"integrationTarget": desired["integrationTarget"]} if "integrationTarget" in desired else {}
        ctx.aws.apigateway.put_integration(restApiId=api["id"], resourceId=proxy["id"], httpMethod="ANY",
                                           type=desired["type"], integrationHttpMethod="ANY", uri=desired["uri"],
                                           connectionType="VPC_LINK", connectionId=desired["connectionId"],
                                           requestParameters=desired["requestParameters"],
                                           timeoutInMillis=desired["timeoutInMillis"], **extra)


def _ensure_stage(ctx: Context, plan: Plan, api: dict | None, desired: dict, link_id: str, new: set[str]) -> None:
    gw, stage_name = ctx.aws.apigateway, ctx.params.api.stage
    stage = deployment = None
    if api is not None and "api" not in new:
        stage = aws_apigateway.stage(ctx.aws, api["id"], stage_name)
        if stage is not None:
            deployment = aws_apigateway.deployment(ctx.aws, api["id"], stage["deploymentId"])
    wanted_description = FINGERPRINT_PREFIX + fingerprint(desired)
    deployed = (deployment or {}).get("description", "")
    variables = (stage or {}).get("variables", {})
    if deployed != wanted_description:
        if plan.add(f"deployment to stage {stage_name}", "create", deployed or None,
                    f"{wanted_description}, {STAGE_VARIABLE}={link_id}",
                    "a REST API serves what was last deployed; the integration changed or was never deployed"):
            gw.create_deployment(restApiId=api["id"], stageName=stage_name, description=wanted_description,
                                 variables={STAGE_VARIABLE: link_id})
            variables = {STAGE_VARIABLE: link_id}
            stage = stage or {"variables": variables}
    else:
        plan.add(f"deployment to stage {stage_name}", "none", deployed, wanted_description, "deployed")
    if stage is not None and variables.get(STAGE_VARIABLE) != link_id:
        if plan.add(f"stage {stage_name} variable {STAGE_VARIABLE}", "update", variables.get(STAGE_VARIABLE),
                    link_id, "the integration's connectionId reads the VPC link id from this stage variable"):
            gw.update_stage(restApiId=api["id"], stageName=stage_name, patchOperations=[
                {"op": "replace", "path": f"/variables/{STAGE_VARIABLE}", "value": link_id}])
    elif stage is not None:
        plan.add(f"stage {stage_name} variable {STAGE_VARIABLE}", "none", link_id, link_id, "set")


def _ensure_mapping(ctx: Context, plan: Plan, api: dict | None) -> None:
    gw, a = ctx.aws.apigateway, ctx.params.api
    label = f"base path mapping {a.domain_name}/{a.base_path}"
    mapping = aws_apigateway.base_path_mapping(ctx.aws, a.domain_name, a.base_path)
    want = f"API {api['id'] if api else '(new)'} stage {a.stage}"
    if mapping is None:
        if plan.add(label, "create", None, want, "puts the service at https://" + f"{a.domain_name}/{a.base_path}"):
            gw.create_base_path_mapping(domainName=a.domain_name, basePath=a.base_path, restApiId=api["id"],
                                        stage=a.stage)
        return
    if api is None or mapping["restApiId"] != api["id"]:
        if find_rest_api_by_id(ctx, mapping["restApiId"]):
            if plan.add(label, "update", f"API {mapping['restApiId']}", want, "points at an older API of ours"):
                gw.update_base_path_mapping(domainName=a.domain_name, basePath=a.base_path, patchOperations=[
                    {"op": "replace", "path": "/restapiId", "value": api["id"]},
                    {"op": "replace", "path": "/stage", "value": a.stage}])
            return
        raise PreflightRefused(f"{a.domain_name}/{a.base_path} already maps to API {mapping['restApiId']}, which is "
                               "not this runbook's; choose another api.base_path. Nothing was changed.")
    if mapping.get("stage") != a.stage:
        if plan.add(label, "update", f"stage {mapping.get('stage')}", want, "the mapping must serve our stage"):
            gw.update_base_path_mapping(domainName=a.domain_name, basePath=a.base_path, patchOperations=[
                {"op": "replace", "path": "/stage", "value": a.stage}])
        return
    plan.add(label, "none", want, want, "exists")


def endpoints(ctx: Context) -> pd.DataFrame:
    """Where the service answers: the custom-domain URL and the stage's execute-api URL."""
    p, api = ctx.params, find_rest_api(ctx)
    rows = [{"what": "custom domain URL", "url": f"https://{p.api.domain_name}/{p.api.base_path}/"}]
    if api:
        rows.append({"what": "stage URL", "url": f"https://{api['id']}.execute-api.{p.region}.amazonaws.com/"
                                                 f"{p.api.stage}/"})
    return pd.DataFrame(rows, columns=["what", "url"])

