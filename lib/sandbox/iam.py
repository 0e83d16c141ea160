"""IAM enforcement behaviour that moto 5.2 gets wrong.

IAM (when enforcement is on: POST /moto-api/reset-auth)
- API Gateway requests are authorized as apigateway:<HTTP verb> (moto: apigateway:<Operation>), and
  bodiless GET/DELETE requests verify (moto: 403 SignatureDoesNotMatch for every API Gateway GET).
- Tagging on create also needs the tagging action (elasticloadbalancing:AddTags, ec2:CreateTags,
  ecs:TagResource, ssm:AddTagsToResource), and an ECS role ARN needs iam:PassRole (moto: not checked).
- AccessDenied names the action, in JSON for JSON services (moto: XML botocore cannot parse for them).
"""

from __future__ import annotations

import json
from typing import Any

# ---- IAM enforcement (moto's INITIAL_NO_AUTH_ACTION_COUNT / POST /moto-api/reset-auth) -----------------

# Tagging on create, and handing a role to a service, are authorized separately by AWS (the caller needs the
# tagging action and iam:PassRole too); moto checks only the request's own action.
_TAG_ON_CREATE = {
    "elasticloadbalancing": ("elasticloadbalancing:AddTags", ("Tags.member.",)),
    "ec2": ("ec2:CreateTags", ("TagSpecification.",)),
    "ecs": ("ecs:TagResource", ("tags",)),
    "ssm": ("ssm:AddTagsToResource", ("Tags",)),
}
_PASSED_ROLES = {"ecs": ("taskRoleArn", "executionRoleArn", "role")}
# (caller ARN, action, the runbook step named in the User-Agent or "") of every authorization checked, in
# order: what CloudTrail would show.
AUTHORIZATIONS: list[tuple[str, str, str]] = []


def _step(req: Any) -> str:
    agent = {k.lower(): v for k, v in req._headers.items()}.get("user-agent", "")
    return next((part[5:] for part in agent.split() if part.startswith("step/")), "")


def _request_fields(req: Any) -> dict[str, Any]:
    """The request's parameters: the JSON body (JSON protocols) or the query/form fields (query protocols)."""
    body = req._body
    if body:
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                return parsed
        except (ValueError, UnicodeDecodeError):
            pass
    return {k: (v[0] if isinstance(v, list) and v else v) for k, v in (req._data or {}).items()}


def _implied_actions(req: Any) -> list[tuple[str, str]]:
    """(action, resource) pairs AWS also authorizes for this request: tag-on-create and iam:PassRole."""
    fields = _request_fields(req)
    service, operation = req._action.split(":", 1)
    implied = []
    tagging = _TAG_ON_CREATE.get(service)
    if tagging and operation.startswith(("Create", "Register", "Put", "Authorize", "Run")):
        action, prefixes = tagging
        if any(k.startswith(prefixes) and fields[k] for k in fields):
            implied.append((action, "*"))
    for key in _PASSED_ROLES.get(service, ()):
        if isinstance(fields.get(key), str) and fields[key].startswith("arn:"):
            implied.append(("iam:PassRole", fields[key]))
    return implied


def _json_protocol(req: Any) -> bool:
    content_type = {k.lower(): v for k, v in req._headers.items()}.get("content-type", "")
    query_protocol = req._service in ("ec2", "elasticloadbalancing", "iam", "sts")
    return not query_protocol and "www-form-urlencoded" not in content_type


def _install_iam() -> None:
    from moto.core.exceptions import AccessDeniedError, JsonRESTError
    from moto.iam import access_control as ac

    base = ac.IAMRequestBase

    class _XmlAccessDenied(AccessDeniedError):
        def __init__(self, message: str) -> None:
            super(AccessDeniedError, self).__init__("AccessDenied", message)

    def init(orig: Any) -> Any:
        def f(self: Any, *args: Any, **kwargs: Any) -> None:
            orig(self, *args, **kwargs)
            # API Gateway's IAM actions are the HTTP verbs of its management API (moto: operation names).
            if self._service == "apigateway":
                self._action = f"apigateway:{self._method}"
        return f

    def create_aws_request(orig: Any) -> Any:
        def f(self: Any) -> Any:
            request = orig(self)
            # A bodiless REST request was signed over an empty payload (moto re-signs it over the query fields).
            if self._method in ("GET", "HEAD", "DELETE") and not self._body:
                request.data = b""
            return request
        return f

    def check_action_permitted(orig: Any) -> Any:
        def f(self: Any, resource: str) -> None:
            AUTHORIZATIONS.append((self._access_key.arn, self._action, _step(self)))
            orig(self, resource)
            requested = self._action
            try:
                for action, target in _implied_actions(self):
                    self._action = action
                    self._implied_resource = target
                    AUTHORIZATIONS.append((self._access_key.arn, action, _step(self)))
                    orig(self, target)
            finally:
                self._action = requested
        return f

    def raise_access_denied(orig: Any) -> Any:
        def f(self: Any) -> None:
            resource = getattr(self, "_implied_resource", None)
            on = f" on resource: {resource}" if resource and resource != "*" else ""
            message = (f"User: {self._access_key.arn} is not authorized to perform: {self._action}{on} "
                       f"because no identity-based policy allows the {self._action} action")
            if _json_protocol(self):
                # JSON services answer in JSON (moto: always XML, which botocore cannot parse for them).
                err = JsonRESTError("AccessDeniedException", message)
                err.code = 403
                raise err
            raise _XmlAccessDenied(message)
        return f

    base.__init__ = init(base.__init__)
    base._create_aws_request = create_aws_request(base._create_aws_request)
    base.check_action_permitted = check_action_permitted(base.check_action_permitted)
    ac.IAMRequest._raise_access_denied = raise_access_denied(ac.IAMRequest._raise_access_denied)

