"""API Gateway (REST) finders: our REST API, its {proxy+} resource, method and integration, stage and
deployment, the custom domain's base path mappings.

REST API names are not unique: an API of our name that is not tagged as ours is simply not ours (left out),
and a base path mapping to such an API is refused by the step that would take it over. Looking an API up
by id raises errors.NotOurs when it is not tagged as ours."""

from __future__ import annotations

from vpclink_runbooks.aws.missing import ignore_missing
from vpclink_runbooks.errors import NotOurs
from vpclink_runbooks.names import Names

PERMISSIONS = ["apigateway:GET"]
PROXY_PATH = "{proxy+}"
MISSING = "NotFoundException"


def owned_rest_apis(aws, names: Names) -> list[dict]:
    """Every REST API tagged as this environment's runbook's, oldest first."""
    apis = [a for page in aws.apigateway.get_paginator("get_rest_apis").paginate() for a in page["items"]
            if names.owns(a.get("tags"))]
    return sorted(apis, key=lambda a: (str(a.get("createdDate", "")), a["id"]))


def base_path_mapping(aws, domain_name: str, base_path: str) -> dict | None:
    return ignore_missing(lambda: aws.apigateway.get_base_path_mapping(domainName=domain_name, basePath=base_path),
                          MISSING)


def our_apis(aws, names: Names, domain_name: str, base_path: str) -> tuple[dict | None, list[dict]]:
    """(the API to keep, duplicates). Two APIs of ours only exist after runs that overlapped or crashed
    between creating an API and finding it again; keep the one the domain maps to, else the oldest."""
    apis = [a for a in owned_rest_apis(aws, names) if a["name"] == names.rest_api]
    if len(apis) <= 1:
        return (apis[0] if apis else None), []
    mapped = (base_path_mapping(aws, domain_name, base_path) or {}).get("restApiId")
    keep = next((a for a in apis if a["id"] == mapped), apis[0])
    return keep, [a for a in apis if a is not keep]


def rest_api(aws, names: Names, domain_name: str, base_path: str) -> dict | None:
    """Our REST API (the one apply keeps); None when there is none."""
    return our_apis(aws, names, domain_name, base_path)[0]


def rest_api_by_id(aws, names: Names, api_id: str) -> dict | None:
    """The REST API of that id if it is ours; None when there is none; NotOurs when it is not tagged as ours."""
    api = ignore_missing(lambda: aws.apigateway.get_rest_api(restApiId=api_id), MISSING)
    if api is not None and not names.owns(api.get("tags")):
        raise NotOurs("REST API", api.get("name", ""), api_id)
    return api


def proxy_resource(aws, api_id: str) -> tuple[dict | None, dict]:
    """(the API's /{proxy+} resource, directly under the root, or None; the root resource). A {proxy+}
    deeper in the tree is not the one apply makes, and neither apply, verify nor export takes it for it."""
    resources = [r for page in aws.apigateway.get_paginator("get_resources").paginate(restApiId=api_id)
                 for r in page["items"]]
    root = next(r for r in resources if r["path"] == "/")
    proxy = next((r for r in resources if r.get("pathPart") == PROXY_PATH and r.get("parentId") == root["id"]), None)
    return proxy, root


def method(aws, api_id: str, resource_id: str, http_method: str = "ANY") -> dict | None:
    return ignore_missing(lambda: aws.apigateway.get_method(restApiId=api_id, resourceId=resource_id,
                                                            httpMethod=http_method), MISSING)


def integration(aws, api_id: str, resource_id: str, http_method: str = "ANY") -> dict | None:
    return ignore_missing(lambda: aws.apigateway.get_integration(restApiId=api_id, resourceId=resource_id,
                                                                 httpMethod=http_method), MISSING)


def stage(aws, api_id: str, stage_name: str) -> dict | None:
    return ignore_missing(lambda: aws.apigateway.get_stage(restApiId=api_id, stageName=stage_name), MISSING)


def deployment(aws, api_id: str, deployment_id: str) -> dict | None:
    return ignore_missing(lambda: aws.apigateway.get_deployment(restApiId=api_id, deploymentId=deployment_id),
                          MISSING)


def domain_mappings(aws, domain_name: str) -> list[dict]:
    """Every base path mapping of the custom domain (every team's); [] when the domain does not exist."""
    return ignore_missing(lambda: [m for page in aws.apigateway.get_paginator("get_base_path_mappings").paginate(
        domainName=domain_name) for m in page.get("items", [])], MISSING) or []
