"""API Gateway (V1) behaviour that moto 5.2 lacks.

API Gateway (V1)
- VPC links are PENDING ("VPC link is provisioning ENIs") for `delays.vpc_link_pending` s, then
  AVAILABLE; `set_vpc_link_status` injects e.g. FAILED (moto: AVAILABLE at once, no message).
- A VPC link created while its NLB is not active (still provisioning, or gone) is accepted, then FAILED with
  AWS's message "NLB is not in active state. If you recently created this NLB, please wait for it to become
  active and try again." (moto: AVAILABLE): AWS builds a link only on an active NLB.
- put_integration keeps connectionId and integrationTarget (moto drops them); get_integration and
  get_method's methodIntegration return them.
- GetIntegration of a method that does not exist answers NotFoundException "Invalid Method identifier
  specified", of a method without one "No integration defined for method" (moto: an empty 200).
- update_integration (moto: not implemented, HTTP 500) supports replace on /uri, /connectionId,
  /connectionType, /httpMethod, /timeoutInMillis, /passthroughBehavior and /requestParameters/*.
- CreateDeployment snapshots the API's resources, methods and integrations (moto keeps no copy): the data plane
  (`dataplane`) serves a stage's deployment, so changes not redeployed are not served.
- TestInvokeMethod (moto: not implemented) runs the data plane's resolution against the API's current
  resources with the caller's stageVariables, answering {status, body, headers, multiValueHeaders, log,
  latency}.
"""

from __future__ import annotations

import json
from typing import Any

from .base import _CFG, LOCK, _apigw, _now, _wrap

# --------------------------------------------------------------------------------------------
# API Gateway V1
# --------------------------------------------------------------------------------------------


def set_vpc_link_status(account_id: str, region: str, link_id: str, status: str, message: str = "") -> None:
    """Force a V1 VPC link's status (e.g. FAILED) and statusMessage; it then stays there."""
    with LOCK:
        link = _apigw(account_id, region).get_vpc_link(link_id)
        link.status = status
        link.status_message = message or {
            "AVAILABLE": "Your VPC link is ready",
            "FAILED": "NLB is not available",
        }.get(status, "")
        link._sbx_forced = True


# AWS's statusMessage for a link whose NLB was not active when the link was created (CloudFormation and Terraform
# users report it verbatim when a link is created before its NLB finished provisioning).
NLB_NOT_ACTIVE = ("NLB is not in active state. If you recently created this NLB, please wait for it to become "
                  "active and try again.")


def _advance_vpc_link(link: Any) -> None:
    if getattr(link, "_sbx_forced", False) or link.status != "PENDING":
        return
    if getattr(link, "_sbx_nlb_not_active", False):
        if not getattr(link, "_sbx_answered", False):  # CreateVpcLink's own answer is PENDING (202)
            link._sbx_answered = True
            return
        link.status = "FAILED"
        link.status_message = NLB_NOT_ACTIVE
        return
    if _now() - getattr(link, "_sbx_created", 0.0) >= _CFG.vpc_link_pending:
        link.status = "AVAILABLE"
        link.status_message = "Your VPC link is ready"


def _link_init(orig: Any) -> Any:
    def f(self: Any, *args: Any, **kwargs: Any) -> None:
        orig(self, *args, **kwargs)
        self.status = "PENDING"
        self.status_message = "VPC link is provisioning ENIs"
        self._sbx_created = _now()

    return f


def _create_vpc_link(orig: Any) -> Any:
    def f(self: Any, name: str, description: str, target_arns: list[str], tags: Any) -> Any:
        from .base import _elbv2, _lb_active

        with LOCK:
            link = orig(self, name, description, target_arns, tags)
            lbs = _elbv2(self.account_id, self.region_name).load_balancers
            link._sbx_nlb_not_active = any(arn not in lbs or not _lb_active(lbs[arn]) for arn in target_arns or [])
            return link

    return f


def _link_to_json(orig: Any) -> Any:
    def f(self: Any) -> dict[str, Any]:
        with LOCK:
            _advance_vpc_link(self)
            d = orig(self)
            d["status"] = self.status
            d["statusMessage"] = getattr(self, "status_message", "")
            return d

    return f


def _integration_to_json(orig: Any) -> Any:
    def f(self: Any) -> dict[str, Any]:
        d = orig(self)
        if getattr(self, "connection_id", None):
            d["connectionId"] = self.connection_id
        if getattr(self, "integration_target", None):
            d["integrationTarget"] = self.integration_target
        return {k: v for k, v in d.items() if v is not None}

    return f


def _put_integration(orig: Any) -> Any:
    def f(self: Any) -> Any:
        status, headers, _body = orig(self)
        parts = self.path.split("/")
        integ = self.backend.get_integration(parts[2], parts[4], parts[6])
        integ.connection_id = self._get_param("connectionId")
        integ.integration_target = self._get_param("integrationTarget")
        return status, headers, json.dumps(integ.to_json())

    return f


def _update_integration(self: Any) -> Any:
    from moto.apigateway.exceptions import BadRequestException, NoIntegrationDefined

    parts = self.path.split("/")
    integ = self.backend.get_integration(parts[2], parts[4], parts[6])
    if integ is None:
        raise NoIntegrationDefined()
    for op in self._get_param("patchOperations") or []:
        kind, path, value = op.get("op"), op.get("path", ""), op.get("value")
        if kind not in ("replace", "add", "remove"):
            raise BadRequestException(f"Invalid patch operation specified. Must be add|remove|replace, got {kind}")
        if kind == "remove":
            value = None
        if path == "/uri":
            integ.uri = value
        elif path == "/connectionId":
            integ.connection_id = value
        elif path == "/connectionType":
            integ.connection_type = value
        elif path == "/httpMethod":
            integ.http_method = value
        elif path == "/timeoutInMillis":
            integ.timeout_in_millis = int(value) if value is not None else None
        elif path == "/passthroughBehavior":
            integ.passthrough_behaviour = value
        elif path == "/integrationTarget":
            integ.integration_target = value
        elif path.startswith("/requestParameters/"):
            name = path[len("/requestParameters/") :].replace("~1", "/").replace("~0", "~")
            params = dict(integ.request_parameters or {})
            if value is None:
                params.pop(name, None)
            else:
                params[name] = value
            integ.request_parameters = params
        else:
            raise BadRequestException(f"Invalid patch path '{path}' specified for op '{kind}'.")
    return 200, {}, json.dumps(integ.to_json())


def _create_deployment(orig: Any) -> Any:
    def f(self: Any, *args: Any, **kwargs: Any) -> Any:
        from .dataplane import snapshot

        with LOCK:
            deployment = orig(self, *args, **kwargs)
            deployment._sbx_snapshot = snapshot(self)
            return deployment

    return f


def _get_integration(orig: Any) -> Any:
    def f(self: Any, function_id: str, resource_id: str, method_type: str) -> Any:
        from moto.apigateway.exceptions import MethodNotFoundException, NoIntegrationDefined

        resource = self.get_resource(function_id, resource_id)
        if method_type not in resource.resource_methods:
            raise MethodNotFoundException()
        integration = orig(self, function_id, resource_id, method_type)
        if integration is None:
            raise NoIntegrationDefined()
        return integration

    return f


def _install_apigateway() -> None:
    from moto.apigateway import models as m
    from moto.apigateway.responses import APIGatewayResponse

    _wrap(m.RestAPI, "create_deployment", "apigw.create_deployment", _create_deployment)
    APIGatewayResponse.test_invoke_method = _test_invoke_method
    _wrap(m.VpcLink, "__init__", "apigw.link_init", _link_init)
    _wrap(m.VpcLink, "to_json", "apigw.link_to_json", _link_to_json)
    _wrap(m.APIGatewayBackend, "create_vpc_link", "apigw.create_vpc_link", _create_vpc_link)
    _wrap(m.Integration, "to_json", "apigw.integration_to_json", _integration_to_json)
    _wrap(APIGatewayResponse, "put_integration", "apigw.put_integration", _put_integration)
    _wrap(m.APIGatewayBackend, "get_integration", "apigw.get_integration", _get_integration)
    APIGatewayResponse.update_integration = _update_integration


def _test_invoke_method(self: Any) -> Any:
    """POST /restapis/{id}/resources/{rid}/methods/{verb}: TestInvokeMethod."""
    from moto.apigateway.exceptions import NotFoundException

    from .dataplane import test_invoke

    parts = self.path.split("?")[0].split("/")
    api_id, resource_id, verb = parts[2], parts[4], parts[6]
    with LOCK:
        api = self.backend.apis.get(api_id)
    if api is None:
        raise NotFoundException("Invalid API identifier specified")
    headers = dict(self._get_param("headers") or {})
    for key, values in (self._get_param("multiValueHeaders") or {}).items():
        headers.setdefault(key, ",".join(values))
    body = (self._get_param("body") or "").encode()
    result = test_invoke(self.current_account, self.region, api, resource_id, verb,
                         self._get_param("pathWithQueryString") or "/", headers, body,
                         dict(self._get_param("stageVariables") or {}))
    if "error" in result:
        raise NotFoundException(result["error"])
    return 200, {}, json.dumps(result)
