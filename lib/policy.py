"""The operator's least-privilege IAM policy, generated from the PERMISSIONS every step module declares."""

from __future__ import annotations

import importlib
import json
import re
from functools import cache

from vpclink_runbooks.errors import RunbookError
from vpclink_runbooks.names import Names
from vpclink_runbooks.params import Params
from vpclink_runbooks.run.lock import parameter_name

# Every module whose code calls AWS; each declares the IAM actions it calls in PERMISSIONS, next to its code.
STEP_MODULES = ("steps.inspect", "steps.load_balancer", "steps.vpc_link", "steps.ecs_service", "steps.api", "checks",
                "repair", "steps.destroy", "run.lock", "export",
                "aws.ec2", "aws.elbv2", "aws.ecs", "aws.apigateway", "aws.vpclinks")  # the finders the others share
# boto3 service name -> IAM service prefix, where they differ.
IAM_PREFIX = {"elbv2": "elasticloadbalancing", "apigatewayv2": "apigateway"}
# API Gateway's IAM actions are the HTTP verbs of its REST API (apigateway:GET ...), not operation names.
HTTP_VERB_SERVICES = {"apigateway", "apigatewayv2"}  # apigatewayv2 (VPC link V2) is authorized as apigateway:*
# Resource types (ARN resource part, up to the first variable) the runbook reads or changes; IAM's database
# lists many more per action (ALB, gateway LB, capacity providers ...) that we never touch and so never grant.
OUR_RESOURCE_TYPES = {
    "elasticloadbalancing": ("loadbalancer/net/", "listener/net/", "loadbalancer/app/", "listener/app/",
                             "targetgroup/"),
    "ecs": ("service/", "task-definition/", "task/", "container-instance/", "cluster/"),
    "ssm": ("parameter/",),
    "ec2": ("security-group/", "security-group-rule/"),
    "iam": ("role/",),
}
# Tagging actions apply to many resource types; the runbook only tags what it creates, at creation.
ACTION_RESOURCE_TYPES = {
    "ecs:TagResource": ("service/", "task-definition/"),
    "ec2:CreateTags": ("security-group-rule/", "security-group/"),
    # AWS authorizes CreateSecurityGroup against the VPC too.
    "ec2:CreateSecurityGroup": ("security-group/", "vpc/"),
}
# Actions granted on "*" on purpose, although IAM lists a resource type for them, and why.
WILDCARD_BY_CHOICE = {
    # AWS authorizes ListTasks filtered by cluster/service against "*"; ecs:cluster narrows it (condition below).
    "ecs:ListTasks": "ListTasks by cluster and service names no container instance; scoped by ecs:cluster",
}



def _nlb_group(params: Params) -> bool:
    return params.nlb.type == "network" and params.nlb.security_group


def _creates_groups(params: Params) -> bool:
    return params.vpc_link.version == 2 or params.nlb.type == "application" or params.awsvpc or _nlb_group(params)


# Actions only some paths call: an environment on another path is not granted them.
PATH_ACTIONS = {
    "ec2:CreateSecurityGroup": ("the runbook's own groups: NLB, VPC link V2, ALB, awsvpc tasks", _creates_groups),
    "ec2:DeleteSecurityGroup": ("the runbook's own groups: NLB, VPC link V2, ALB, awsvpc tasks", _creates_groups),
    "elasticloadbalancing:SetSecurityGroups": ("an application load balancer, or an NLB with its own group",
                                               lambda params: params.nlb.type == "application" or _nlb_group(params)),
}
# Declared (the runbook calls them) but never granted: AWS authorizes them without any permission.
NO_PERMISSION_NEEDED = {"sts:GetCallerIdentity": "AWS answers GetCallerIdentity whatever the caller's policies"}


def needed(action: str, params: Params) -> bool:
    """Whether an operator of this environment needs a declared action granted."""
    path = PATH_ACTIONS.get(action)
    return action not in NO_PERMISSION_NEEDED and (path is None or path[1](params))


class PolicyError(RunbookError):
    """A declared action the policy generator cannot scope: map its resource type or say why it is '*'."""


def declared_actions() -> dict[str, list[str]]:
    """Every declared IAM action -> the step modules that declare it."""
    actions: dict[str, list[str]] = {}
    for name in STEP_MODULES:
        for action in importlib.import_module(f"{__package__}.{name}").PERMISSIONS:
            actions.setdefault(action, []).append(name)
    return dict(sorted(actions.items()))


@cache
def _service_model(service: str):
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def iam_action(service: str, operation: str) -> str:
    """The IAM action a boto3 call needs: elbv2 DescribeTags -> elasticloadbalancing:DescribeTags,
    apigateway GetRestApis -> apigateway:GET (the operation's HTTP method, from botocore's service model)."""
    if service in HTTP_VERB_SERVICES:
        return f"{IAM_PREFIX.get(service, service)}:{_service_model(service).operation_model(operation).http['method']}"
    return f"{IAM_PREFIX.get(service, service)}:{operation}"


def apigateway_path(operation: str, params: Params) -> str:
    """The resource path an API Gateway operation acts on, with the env's domain and other ids as 'x'."""
    uri = _service_model("apigateway").operation_model(operation).http["requestUri"].split("?")[0]
    uri = uri.replace("{domain_name}", params.api.domain_name)
    return re.sub(r"\{[^}]+\}", "x", uri)


def undeclared_calls(calls: list[dict]) -> list[str]:
    """'service.Operation -> action' for every recorded call whose IAM action no step module declares."""
    declared = declared_actions()
    missing = {f"{c['service']}.{c['operation']} -> {iam_action(c['service'], c['operation'])}"
               for c in calls if iam_action(c["service"], c["operation"]) not in declared}
    return sorted(missing)


def _apigateway_resources(params: Params) -> dict[str, list[str]]:
    """Per verb, the API Gateway paths the runbook uses. REST API and VPC link ids are random, so those are
    scoped by kind (/restapis/*, /vpclinks/*); the custom domain and its mappings by the env's domain name."""
    domain = f"/domainnames/{params.api.domain_name}"
    paths = {
        "GET": ["/restapis", "/restapis/*", "/vpclinks", "/vpclinks/*", "/v2/vpclinks", "/v2/vpclinks/*", domain,
                f"{domain}/*"],
        "POST": ["/restapis", "/restapis/*", "/vpclinks", "/v2/vpclinks", f"{domain}/basepathmappings"],
        "PUT": ["/restapis/*"],
        "PATCH": ["/restapis/*", f"{domain}/basepathmappings/*"],
        "DELETE": ["/restapis/*", "/vpclinks/*", "/v2/vpclinks/*", f"{domain}/basepathmappings/*"],
    }
    return {verb: [f"arn:aws:apigateway:{params.region}::{p}" for p in ps] for verb, ps in paths.items()}


def _variables(params: Params) -> dict[str, str]:
    names = Names(params)
    return {
        "Partition": "aws", "Region": params.region, "Account": params.account_id,
        "LoadBalancerName": names.nlb, "LoadBalancerId": "*", "ListenerId": "*",
        "TargetGroupName": f"{names.base}-*", "TargetGroupId": "*",
        "ClusterName": params.cluster, "ServiceName": names.ecs_service, "TaskId": "*", "ContainerInstanceId": "*",
        "TaskDefinitionFamilyName": names.task_family, "TaskDefinitionRevisionNumber": "*",
        "ParameterNameWithoutLeadingSlash": parameter_name(params.environment).lstrip("/"),
        "SecurityGroupId": "*", "SecurityGroupRuleId": "*",
        "RoleNameWithPath": _execution_role_name(), "VpcId": params.vpc_id,
    }


def _execution_role_name() -> str:
    from vpclink_runbooks.steps.ecs_service import DEFAULT_EXECUTION_ROLE

    return DEFAULT_EXECUTION_ROLE


def _conditions(params: Params) -> dict[str, dict]:
    cluster_arn = f"arn:aws:ecs:{params.region}:{params.account_id}:cluster/{params.cluster}"
    return {
        "ecs:ListTasks": {"ArnEquals": {"ecs:cluster": cluster_arn}},
        # The runbook passes the execution role to ECS tasks only.
        "iam:PassRole": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        # Tags go on what the runbook creates, at creation, never on anything else.
        "ec2:CreateTags": {"StringEquals": {"ec2:CreateAction": ["AuthorizeSecurityGroupIngress", *(
            ["CreateSecurityGroup"] if _creates_groups(params) else [])]}},
    }


def _arn_formats(action: str) -> set[str]:
    from policy_sentry.querying.actions import get_action_data

    service, name = action.split(":")
    data = get_action_data(service, name) or {}
    formats = {entry["resource_arn_format"] for entry in data.get(service, [])}
    if not formats:
        raise PolicyError(f"{action} is not in policy_sentry's IAM database: fix the PERMISSIONS entry")
    return formats


def resources_for(action: str, params: Params) -> list[str]:
    """The env-scoped resource ARN patterns of one action, from IAM's action/resource data (policy_sentry);
    ["*"] for actions IAM only allows on "*" (Describe*, most List*) and for WILDCARD_BY_CHOICE."""
    service, verb = action.split(":")
    if service in HTTP_VERB_SERVICES:
        return _apigateway_resources(params)[verb]
    formats = _arn_formats(action) - {"*"}
    if not formats or action in WILDCARD_BY_CHOICE:
        return ["*"]
    values = _variables(params)
    ours = []
    for arn_format in sorted(formats):
        resource = arn_format.split(":", 5)[5]
        types = ACTION_RESOURCE_TYPES.get(action, OUR_RESOURCE_TYPES.get(service, ()))
        if service == "elasticloadbalancing":  # only the load balancer type this environment uses
            unused = "/net/" if params.nlb.type == "application" else "/app/"
            types = tuple(t for t in types if unused not in t)
        if not resource.startswith(types):
            continue
        ours.append(re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], arn_format))
    if not ours:
        raise PolicyError(f"{action} acts on {sorted(formats)}, none of which policy.OUR_RESOURCE_TYPES maps to "
                          "this environment: add its resource type, or add it to WILDCARD_BY_CHOICE with why")
    return sorted(ours)


def policy_document(params: Params, *, wildcard_resources: bool = False, without: tuple[str, ...] = ()) -> dict:
    """The IAM policy for plan, apply, verify, repair and destroy of one environment: one statement per set
    of resources. wildcard_resources (for emulators that check every action against "*") drops the scoping
    and conditions; without leaves actions out (to prove each one is needed)."""
    conditions = {} if wildcard_resources else _conditions(params)
    groups: dict[str, dict] = {}
    for action in declared_actions():
        if action in without or not needed(action, params):
            continue
        resources = ["*"] if wildcard_resources else resources_for(action, params)
        condition = conditions.get(action)
        key = json.dumps([resources, condition], sort_keys=True)
        statement = groups.setdefault(key, {"Effect": "Allow", "Action": [], "Resource": resources})
        if condition:
            statement["Condition"] = condition
        statement["Action"].append(action)
    statements = sorted(groups.values(), key=lambda s: (s["Resource"] != ["*"] or "Condition" in s, s["Action"]))
    for number, statement in enumerate(statements, 1):
        kind = "AnyResource" if statement["Resource"] == ["*"] and "Condition" not in statement else "Scoped"
        statement["Sid"] = f"{kind}{number}"
        statement["Action"] = sorted(statement["Action"])
    ordered = [{"Sid": s["Sid"], "Effect": s["Effect"], "Action": s["Action"], "Resource": s["Resource"],
                **({"Condition": s["Condition"]} if "Condition" in s else {})} for s in statements]
    return {"Version": "2012-10-17", "Statement": ordered}


def arn_matches(pattern: str, arn: str) -> bool:
    """IAM's wildcard match: * any run of characters (also across '/' and ':'), ? one character."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, arn) is not None
