"""Export kinds of API Gateway: the REST API, its {proxy+} resource, method, integration, stage, deployment and
the custom domain's base path mapping."""

from __future__ import annotations

import re
from typing import Any

from vpclink_runbooks.aws import apigateway as aws_apigateway
from vpclink_runbooks.export.model import Discovery, Refs, _compact, _with_tags
from vpclink_runbooks.export.rendering import Block, Ref, Template

# -- API Gateway --

def discover_rest_apis(d: Discovery) -> list[dict]:
    return aws_apigateway.owned_rest_apis(d.ctx.aws, d.ctx.names)


def rest_api_body(api: dict, refs: Refs) -> dict:
    body = {
        "name": api["name"],
        "description": api.get("description") or None,
        "api_key_source": api.get("apiKeySource") if api.get("apiKeySource") not in (None, "HEADER") else None,
        "binary_media_types": sorted(api.get("binaryMediaTypes") or []) or None,
        "disable_execute_api_endpoint": True if api.get("disableExecuteApiEndpoint") else None,
        "endpoint_configuration": Block({"types": sorted((api.get("endpointConfiguration") or {}).get(
            "types", ["EDGE"]))}),
    }
    return _with_tags(_compact(body), api.get("tags"))


def discover_proxy_resources(d: Discovery) -> list[dict]:
    found = []
    for api in d.found.get("aws_api_gateway_rest_api", []):
        proxy, root = aws_apigateway.proxy_resource(d.ctx.aws, api["id"])
        if proxy is not None:
            found.append({**proxy, "restApiId": api["id"], "apiName": api["name"], "rootId": root["id"]})
    return found


def resource_body(resource: dict, refs: Refs) -> dict:
    api = resource["restApiId"]
    parent = (refs.attr("aws_api_gateway_rest_api", api, "root_resource_id", resource["parentId"])
              if resource["parentId"] == resource["rootId"]
              else refs.attr("aws_api_gateway_resource", f"{api}/{resource['parentId']}", "id", resource["parentId"]))
    return {"rest_api_id": refs.attr("aws_api_gateway_rest_api", api, "id"), "parent_id": parent,
            "path_part": resource["pathPart"]}


def discover_methods(d: Discovery) -> list[dict]:
    found = []
    for resource in d.found.get("aws_api_gateway_resource", []):
        method = aws_apigateway.method(d.ctx.aws, resource["restApiId"], resource["id"])
        if method is not None:
            method.pop("ResponseMetadata", None)
            found.append({**method, "restApiId": resource["restApiId"], "resourceId": resource["id"],
                          "apiName": resource["apiName"]})
    return found


def _resource_ref(record: dict, refs: Refs) -> Any:
    return refs.attr("aws_api_gateway_resource", f"{record['restApiId']}/{record['resourceId']}", "id",
                     record["resourceId"])


def method_body(method: dict, refs: Refs) -> dict:
    body = {
        "rest_api_id": refs.attr("aws_api_gateway_rest_api", method["restApiId"], "id"),
        "resource_id": _resource_ref(method, refs),
        "http_method": method["httpMethod"],
        "authorization": method.get("authorizationType", "NONE"),
        "authorizer_id": method.get("authorizerId"),
        "api_key_required": True if method.get("apiKeyRequired") else None,
        "request_parameters": dict(sorted((method.get("requestParameters") or {}).items())) or None,
    }
    return _compact(body)


def discover_integrations(d: Discovery) -> list[dict]:
    found = []
    for method in d.found.get("aws_api_gateway_method", []):
        integration = aws_apigateway.integration(d.ctx.aws, method["restApiId"], method["resourceId"])
        if integration is not None:
            integration.pop("ResponseMetadata", None)
            found.append({**integration, "restApiId": method["restApiId"], "resourceId": method["resourceId"],
                          "methodHttpMethod": method["httpMethod"], "apiName": method["apiName"]})
    return found


def _uri(uri: str | None, refs: Refs) -> Any:
    """The integration URI, its host an interpolation of the exported load balancer's DNS name."""
    if not uri:
        return None
    for item in refs.of_type("aws_lb"):
        match = re.match(r"^(https?://)" + re.escape(item.live["DNSName"]) + r"([:/].*)?$", uri)
        if match:
            return Template((match.group(1), Ref(f"{item.address}.dns_name"), match.group(2) or ""))
    return uri


def _link_ref(link_id: str | None, refs: Refs) -> Any:
    for tf_type in ("aws_api_gateway_vpc_link", "aws_apigatewayv2_vpc_link"):
        if link_id and refs.get(tf_type, link_id):
            return refs.attr(tf_type, link_id, "id")
    return link_id


def integration_body(integration: dict, refs: Refs) -> dict:
        connection = integration.get("connectionId")
        method_id = f"{integration['restApiId']}/{integration['resourceId']}/{integration['methodHttpMethod']}"
        body = {
            "rest_api_id": refs.attr("aws_api_gateway_rest_api", integration["restApiId"], "id"),
            "resource_id": _resource_ref(integration, refs),
            "http_method": refs.attr("aws_api_gateway_method", method_id, "http_method",
                                     integration["methodHttpMethod"]),
            "type": integration["type"],
            "integration_http_method": integration.get("httpMethod"),
            "uri": _uri(integration.get("uri"), refs),
            "connection_type": integration.get("connectionType"),
            # A literal link id (V1 or V2) becomes a reference; ${stageVariables.vpcLinkId} stays literal.
            "connection_id": _link_ref(connection, refs),
            "integration_target": (refs.attr("aws_lb", integration["integrationTarget"], "arn")
                                   if integration.get("integrationTarget") else None),
            "request_parameters": dict(sorted((integration.get("requestParameters") or {}).items())) or None,
            "passthrough_behavior": integration.get("passthroughBehavior"),
            "cache_key_parameters": sorted(integration.get("cacheKeyParameters") or []) or None,
            "timeout_milliseconds": integration.get("timeoutInMillis"),
        }
        return _compact(body)


def discover_stages(d: Discovery) -> list[dict]:
    gw, found = d.ctx.aws.apigateway, []
    for api in d.found.get("aws_api_gateway_rest_api", []):
        for stage in gw.get_stages(restApiId=api["id"]).get("item", []):
            found.append({**stage, "restApiId": api["id"], "apiName": api["name"]})
    return found


def stage_body(stage: dict, refs: Refs) -> dict:
    api = stage["restApiId"]
    variables = {k: _link_ref(v, refs) for k, v in sorted((stage.get("variables") or {}).items())}
    body = {
        "rest_api_id": refs.attr("aws_api_gateway_rest_api", api, "id"),
        "stage_name": stage["stageName"],
        "deployment_id": refs.attr("aws_api_gateway_deployment", f"{api}/{stage['deploymentId']}", "id",
                                   stage["deploymentId"]),
        "description": stage.get("description") or None,
        "cache_cluster_enabled": True if stage.get("cacheClusterEnabled") else None,
        "cache_cluster_size": stage.get("cacheClusterSize") if stage.get("cacheClusterEnabled") else None,
        "xray_tracing_enabled": True if stage.get("tracingEnabled") else None,
        "variables": variables or None,
    }
    return _with_tags(_compact(body), stage.get("tags"))


def discover_deployments(d: Discovery) -> list[dict]:
    """The deployments the stages serve; older ones are history that goes with the REST API."""
    found, seen = [], set()
    for stage in d.found.get("aws_api_gateway_stage", []):
        key = (stage["restApiId"], stage.get("deploymentId"))
        if not stage.get("deploymentId") or key in seen:
            continue
        seen.add(key)
        deployment = aws_apigateway.deployment(d.ctx.aws, stage["restApiId"], stage["deploymentId"])
        if deployment is not None:
            deployment.pop("ResponseMetadata", None)
            found.append({**deployment, "restApiId": stage["restApiId"], "apiName": stage["apiName"],
                          "stageName": stage["stageName"]})
    return found


def deployment_body(deployment: dict, refs: Refs) -> dict:
    body = {
        "rest_api_id": refs.attr("aws_api_gateway_rest_api", deployment["restApiId"], "id"),
        "description": deployment.get("description") or None,
        # The provider's advice: a redeployment must exist before the stage moves off the old one.
        "lifecycle": Block({"create_before_destroy": True}),
    }
    return _compact(body)


def discover_base_path_mappings(d: Discovery) -> list[dict]:
    ours = {api["id"] for api in d.found.get("aws_api_gateway_rest_api", [])}
    domain = d.ctx.params.api.domain_name
    return [{**m, "domainName": domain} for m in aws_apigateway.domain_mappings(d.ctx.aws, domain)
            if m["restApiId"] in ours]


def base_path_mapping_body(mapping: dict, refs: Refs) -> dict:
    api, stage = mapping["restApiId"], mapping.get("stage")
    base_path = "" if mapping["basePath"] == "(none)" else mapping["basePath"]
    body = {
        "api_id": refs.attr("aws_api_gateway_rest_api", api, "id"),
        "domain_name": mapping["domainName"],
        "base_path": base_path or None,
        "stage_name": refs.attr("aws_api_gateway_stage", f"{api}/{stage}", "stage_name", stage) if stage else None,
    }
    return _compact(body)


def _mapping_import_id(mapping: dict) -> str:
    base_path = "" if mapping["basePath"] == "(none)" else mapping["basePath"]
    return f"{mapping['domainName']}/{base_path}"
