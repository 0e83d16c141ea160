"""What a mutating call changes in the answers of later reads (the run inventory keeps them true with this).

For the calls the runbook makes on its way up, AWS's own answer says what a later read would answer, in
the shapes of AWS's API reference: CreateLoadBalancer answers the LoadBalancer that
DescribeLoadBalancers(Names=[name]) lists, PutIntegration the Integration that GetIntegration answers, and so
on. CHANGES lists, per mutation, each read it changes and how:

- ("same", read, params): the read with those params now answers what the mutation answered (reshaped);
- ("append", read, params, list_key): a kept list answer of that read gains the created item;
- ("forget", read, keys): kept answers of that read naming the same values for `keys` are forgotten;
- ("extend", items): resources the mutation changed, by identity, with values to add to their list fields
  wherever a kept answer holds them (a new listener's target groups list its load balancer);
- ("update", items): resources the mutation changed, by identity, with the values that replace theirs wherever
  a kept answer holds them (SetSecurityGroups: the load balancer's groups and PrivateLink setting).

A mutation not listed here forgets every kept answer of its service that names anything it names or
answered (run_inventory.RunInventory._forget): coarse, and always safe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Rows = list[tuple[str, dict, dict]]  # (read operation, its parameters, its answer)


def _tags_of(arn: str, tags: list[dict] | None) -> tuple[str, dict, dict]:
    return "DescribeTags", {"ResourceArns": [arn]}, {"TagDescriptions": [{"ResourceArn": arn, "Tags": tags or []}]}


def _load_balancer(p: dict, a: dict) -> Rows:
    lb = a["LoadBalancers"][0]
    arn = lb["LoadBalancerArn"]
    return [("DescribeLoadBalancers", {"Names": [p["Name"]]}, {"LoadBalancers": [lb]}),
            _tags_of(arn, p.get("Tags")), ("DescribeListeners", {"LoadBalancerArn": arn}, {"Listeners": []})]


def _target_group(p: dict, a: dict) -> Rows:
    tg = a["TargetGroups"][0]
    return [("DescribeTargetGroups", {"Names": [p["Name"]]}, {"TargetGroups": [tg]}),
            _tags_of(tg["TargetGroupArn"], p.get("Tags"))]


def _attributes(p: dict, a: dict) -> Rows:
    # ModifyLoadBalancerAttributes answers every attribute of the load balancer, not only those it changed
    return [("DescribeLoadBalancerAttributes", {"LoadBalancerArn": p["LoadBalancerArn"]},
             {"Attributes": a["Attributes"]})]


def _task_definition(p: dict, a: dict) -> Rows:
    td = a["taskDefinition"]
    return [("DescribeTaskDefinition", {"taskDefinition": td["family"]}, {"taskDefinition": td}),
            ("DescribeTaskDefinition", {"taskDefinition": td["taskDefinitionArn"]}, {"taskDefinition": td})]


def _forwarded_groups(p: dict, a: dict) -> list[dict]:
    """The target groups a new listener forwards to now list its load balancer (in LoadBalancerArns)."""
    arns = {action["TargetGroupArn"] for action in p.get("DefaultActions", []) if action.get("TargetGroupArn")}
    arns |= {group["TargetGroupArn"] for action in p.get("DefaultActions", [])
             for group in action.get("ForwardConfig", {}).get("TargetGroups", [])}
    return [{"TargetGroupArn": arn, "LoadBalancerArns": [p["LoadBalancerArn"]]} for arn in sorted(arns)]


def _security_group(p: dict, a: dict) -> Rows:
    """A new group is what the finder (aws.ec2.security_group) reads by VPC and name, with no ingress rule yet."""
    tags = [t for spec in p.get("TagSpecifications", []) if spec.get("ResourceType") == "security-group"
            for t in spec.get("Tags", [])]
    group = {"GroupId": a["GroupId"], "GroupName": p["GroupName"], "Description": p.get("Description", ""),
             "VpcId": p.get("VpcId"), "Tags": tags, "IpPermissions": []}
    return [("DescribeSecurityGroups", {"Filters": [{"Name": "vpc-id", "Values": [p.get("VpcId")]},
                                                    {"Name": "group-name", "Values": [p["GroupName"]]}]},
             {"SecurityGroups": [group]}),
            ("DescribeSecurityGroupRules", {"Filters": [{"Name": "group-id", "Values": [a["GroupId"]]}]},
             {"SecurityGroupRules": []})]


def _load_balancer_groups(p: dict, a: dict) -> list[dict]:
    """SetSecurityGroups answers the load balancer's groups (and, for an NLB, its PrivateLink setting)."""
    item = {"LoadBalancerArn": p["LoadBalancerArn"], "SecurityGroups": a.get("SecurityGroupIds", p["SecurityGroups"])}
    if a.get("EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic"):
        item["EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic"] = a[
            "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic"]
    return [item]


def _api_item(read: str, keys: tuple[str, ...]) -> Callable[[dict, dict], Rows]:
    def rows(p: dict, a: dict) -> Rows:
        return [(read, {k: p[k] for k in keys}, a)]
    return rows


def _deployment(p: dict, a: dict) -> Rows:
    return [("GetDeployment", {"restApiId": p["restApiId"], "deploymentId": a["id"]}, a)]


def _rest_api(p: dict, a: dict) -> Rows:
    return [("GetRestApi", {"restApiId": a["id"]}, a),
            ("GetResources", {"restApiId": a["id"]},
             {"items": [{"id": a["rootResourceId"], "path": "/"}]} if a.get("rootResourceId") else None)]


def _vpc_link(p: dict, a: dict) -> Rows:
    return [("GetVpcLink", {"vpcLinkId": a["id"]}, a)]


def _vpc_link_v2(p: dict, a: dict) -> Rows:
    return [("GetVpcLink", {"VpcLinkId": a["VpcLinkId"]}, a)]


def _service(p: dict, a: dict) -> Rows:
    # what the runbook's finder asks (aws.ecs.services); the service's tasks come later, and are read then
    return [("DescribeServices", {"cluster": p["cluster"], "services": [p["serviceName"]], "include": ["TAGS"]},
             {"services": [{**a["service"], "tags": p.get("tags", [])}], "failures": []})]


def _group_filter(p: dict) -> dict:
    return {"Filters": [{"Name": "group-id", "Values": [p["GroupId"]]}]}


_METHOD = ("restApiId", "resourceId", "httpMethod")
# a new service places tasks: they take ports and resources on container instances and register as targets
_TASKS = ("ecs.ListTasks", "ecs.DescribeTasks", "ecs.DescribeContainerInstances", "elbv2.DescribeTargetHealth")
# "service.Operation" -> what it changes (see the module docstring); a read named without a service is of the
# mutation's service.
CHANGES: dict[str, dict[str, Any]] = {
    "elbv2.CreateLoadBalancer": {"same": _load_balancer, "append": [("DescribeLoadBalancers", "LoadBalancers")]},
    "elbv2.CreateTargetGroup": {"same": _target_group, "append": [("DescribeTargetGroups", "TargetGroups")]},
    "elbv2.ModifyLoadBalancerAttributes": {"same": _attributes},
    "elbv2.SetSecurityGroups": {"update": _load_balancer_groups},
    "ec2.CreateSecurityGroup": {"same": _security_group},
    "elbv2.CreateListener": {"append": [("DescribeListeners", "Listeners", "LoadBalancerArn")],
                             "extend": _forwarded_groups},
    "ecs.RegisterTaskDefinition": {"same": _task_definition},
    "ecs.CreateService": {"same": _service, "forget": [(read, ("cluster",)) for read in _TASKS[:3]]
                          + [(_TASKS[3], ())]},
    "ec2.AuthorizeSecurityGroupIngress": {"append": [("DescribeSecurityGroupRules", "SecurityGroupRules",
                                                      _group_filter)],
                                          "forget": [("elbv2.DescribeTargetHealth", ())]},
    "apigateway.CreateVpcLink": {"same": _vpc_link, "append": [("GetVpcLinks", "items")]},
    "apigatewayv2.CreateVpcLink": {"same": _vpc_link_v2, "append": [("GetVpcLinks", "Items")]},
    "apigateway.CreateRestApi": {"same": _rest_api, "append": [("GetRestApis", "items")]},
    "apigateway.CreateResource": {"append": [("GetResources", "items", "restApiId")]},
    # GetResources lists a resource's methods only when asked to embed them, which the runbook never does
    "apigateway.PutMethod": {"same": _api_item("GetMethod", _METHOD)},
    "apigateway.PutIntegration": {"same": _api_item("GetIntegration", _METHOD), "forget": [("GetMethod", _METHOD)]},
    "apigateway.CreateDeployment": {"same": _deployment,
                                    "forget": [("GetStage", ("restApiId",)), ("GetStages", ("restApiId",)),
                                               ("GetDeployments", ("restApiId",))]},
    "apigateway.CreateBasePathMapping": {"same": _api_item("GetBasePathMapping", ("domainName", "basePath")),
                                         "append": [("GetBasePathMappings", "items", "domainName")]},
}


def after(service: str, operation: str, params: dict, answer: dict) -> dict | None:
    """What `operation` of `service` (made with `params`, answered `answer`) changes: {"same": [(service, read,
    params, answer)], "append": [(service, read, list_key, params, item)], "forget": [(service, read, {key:
    value})], "extend": [partial resource]}; None for a mutation CHANGES does not list."""
    spec = CHANGES.get(f"{service}.{operation}")
    if spec is None:
        return None

    def split(read: str) -> tuple[str, str]:
        return tuple(read.split(".", 1)) if "." in read else (service, read)

    same = [(service, read, read_params, read_answer)
            for read, read_params, read_answer in (spec["same"](params, answer) if "same" in spec else [])
            if read_answer is not None]
    appends = []
    for read, list_key, *scope in spec.get("append", []):
        if scope and callable(scope[0]):
            read_params = scope[0](params)
        else:
            read_params = {k: params[k] for k in scope}
        items = answer.get(list_key) if isinstance(answer.get(list_key), list) else [_created_item(answer)]
        appends.append((service, read, list_key, read_params, items))
    forgets = [(*split(read), {k: params.get(k) for k in keys}) for read, keys in spec.get("forget", [])]
    extend = spec["extend"](params, answer) if "extend" in spec else []
    update = spec["update"](params, answer) if "update" in spec else []
    return {"same": same, "append": appends, "forget": forgets, "extend": extend, "update": update}


def _created_item(answer: dict) -> dict:
    """The one resource a create answered: LoadBalancers[0], TargetGroups[0], Listeners[0], or the answer."""
    for key in ("LoadBalancers", "TargetGroups", "Listeners"):
        if answer.get(key):
            return answer[key][0]
    return answer


def _task_definition_by_arn(p: dict, a: dict) -> list[dict]:
    td = a.get("taskDefinition") or {}
    arn = td.get("taskDefinitionArn")
    return [{**p, "taskDefinition": arn}] if arn and p.get("taskDefinition") != arn else []


# A read's answer that also answers the same read with other parameters: "service.Operation" -> the other params.
ALIASES: dict[str, Callable[[dict, dict], list[dict]]] = {
    # the family's latest revision is that revision by ARN (what the service names)
    "ecs.DescribeTaskDefinition": _task_definition_by_arn,
}


def aliases(service: str, operation: str, params: dict, answer: dict) -> list[dict]:
    """The other parameters the same read with this answer would be made with (ALIASES)."""
    alias = ALIASES.get(f"{service}.{operation}")
    return alias(params, answer) if alias else []


# A read by name that a complete list answer (one page, no next-page marker) already answers: "service.Operation"
# -> (the name parameter, the list read's parameters, its list key, the item's name field, the page marker, the
# error AWS answers for a name it does not have: status, code, message).
FROM_LIST = {
    "elbv2.DescribeLoadBalancers": ("Names", (), "LoadBalancers", "LoadBalancerName", "NextMarker",
                                    (400, "LoadBalancerNotFound", "One or more load balancers not found")),
    "elbv2.DescribeTargetGroups": ("Names", (), "TargetGroups", "TargetGroupName", "NextMarker",
                                   (400, "TargetGroupNotFound", "One or more target groups not found")),
    "apigateway.GetBasePathMapping": ("basePath", ("domainName",), "items", "basePath", "position",
                                      (404, "NotFoundException", "Invalid base path mapping identifier specified")),
}


def from_list(service: str, operation: str, params: dict, kept) -> tuple[int, dict] | None:
    """(status, answer) of a read by one name, from the kept complete list answer (`kept(operation, params)`
    returns a kept row or None); None when there is no such list answer."""
    spec = FROM_LIST.get(f"{service}.{operation}")
    if spec is None:
        return None
    name_key, scope, list_key, name_field, marker, (status, code, message) = spec
    name = params.get(name_key)
    names = name if isinstance(name, list) else [name]
    if len(names) != 1 or set(params) != {name_key, *scope}:
        return None
    list_operation = "GetBasePathMappings" if operation == "GetBasePathMapping" else operation
    row = kept(list_operation, {k: params[k] for k in scope})
    if row is None or row["parsed"].get(marker):
        return None
    if row["status"] >= 300:  # the list's own error (e.g. no such custom domain) answers the read too
        return row["status"], row["parsed"]
    found = [item for item in row["parsed"].get(list_key, []) if item.get(name_field) == names[0]]
    if operation == "GetBasePathMapping":
        return (200, found[0]) if found else (status, {"Error": {"Code": code, "Message": message}})
    if found:
        return 200, {list_key: found}
    return status, {"Error": {"Code": code, "Message": message, "Type": "Sender"}}
