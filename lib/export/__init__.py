"""Hand over to Terraform: what the runbook created, read live, as `import` blocks and matching resources.

`runbook export ENV --format terraform` finds everything this environment's runbook created the same way
destroy does (by the runbook's names and tags), reads its live attributes, and writes a directory a team can
`terraform init` and `terraform plan`: the plan shows imports only, so the setup is adopted without
recreating anything. Export is read-only: the session refuses every mutating call before it is sent.

The work is a table, KINDS: one row per Terraform resource type, with how to discover the live records,
their import id (the format the AWS provider documents for that type), a stable label, and the resource
body. Kinds reference each other by Terraform address when the referenced resource is exported too
(listener -> aws_lb.x.arn), and fall back to the live literal when it is not (pre-existing resources).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vpclink_runbooks import sandbox_link
from vpclink_runbooks.aws import apigateway as aws_apigateway
from vpclink_runbooks.aws import ec2 as aws_ec2
from vpclink_runbooks.aws import ecs as aws_ecs
from vpclink_runbooks.aws import elbv2 as aws_elbv2
from vpclink_runbooks.aws import session as aws_mod
from vpclink_runbooks.aws import vpclinks
from vpclink_runbooks.context import Context
from vpclink_runbooks.errors import NotOurs, RunbookError
from vpclink_runbooks.names import Names
from vpclink_runbooks.params import Params, load_params
from vpclink_runbooks.steps.destroy import NOT_OURS

PERMISSIONS = [
    "sts:GetCallerIdentity",
    "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeTargetGroups",
    "apigateway:GET",
    "ecs:DescribeServices", "ecs:ListTaskDefinitions", "ecs:DescribeTaskDefinition",
    "ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules",
]
FORMATS = ("terraform",)
# import blocks exist since Terraform 1.5; aws_vpc_security_group_ingress_rule since AWS provider 5.0.
TERRAFORM_VERSION = ">= 1.5.0"
AWS_PROVIDER_VERSION = ">= 5.0"
HEADER = "# Written by `runbook export {env} --format terraform` from the live state; see README.md.\n"


class NothingToExport(RunbookError):
    """Nothing this environment's runbook created exists (never applied, or destroyed); nothing was written."""

    exit_code = 2


class MutationRefused(RunbookError):
    """Export tried a mutating AWS call: a bug; the call was not sent."""


# ---- HCL values ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ref:
    """A Terraform expression written as is, e.g. aws_lb.local_orders_nlb.arn."""

    expr: str


@dataclass(frozen=True)
class Template:
    """A string with interpolations: parts are literal strings or Refs."""

    parts: tuple


@dataclass(frozen=True)
class Call:
    """A function call with one argument, e.g. jsonencode([...])."""

    function: str
    argument: Any


@dataclass(frozen=True)
class Block:
    """A nested block (health_check { ... }) rather than an attribute holding an object."""

    body: dict


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def hcl_string(text: str) -> str:
    """A quoted HCL string whose value is exactly `text`: `${` and `%{` are escaped, so an API Gateway
    stage-variable expression like ${stageVariables.vpcLinkId} stays literal instead of interpolating."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
               .replace("\t", "\\t").replace("${", "$${").replace("%{", "%%{"))
    return f'"{escaped}"'


def _key(key: str) -> str:
    return key if _IDENTIFIER.match(key) else hcl_string(key)


def render_value(value: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, Ref):
        return value.expr
    if isinstance(value, Template):
        return '"' + "".join("${" + p.expr + "}" if isinstance(p, Ref) else hcl_string(p)[1:-1]
                             for p in value.parts) + '"'
    if isinstance(value, Call):
        return f"{value.function}({render_value(value.argument, indent)})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return hcl_string(value)
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if all(isinstance(v, (str, int, float, bool, Ref)) for v in value):
            return "[" + ", ".join(render_value(v) for v in value) + "]"
        items = [f"{pad}  {render_value(v, indent + 1)}," for v in value]
        return "[\n" + "\n".join(items) + f"\n{pad}]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{\n" + "\n".join(_attribute_lines(value, indent + 1)) + f"\n{pad}}}"
    raise TypeError(f"cannot write {type(value).__name__} as HCL: {value!r}")


def _attribute_lines(body: dict, indent: int) -> list[str]:
    """`key = value` lines, the `=` aligned within each run of single-line attributes (as terraform fmt)."""
    pad = "  " * indent
    rendered = [(_key(k), render_value(v, indent)) for k, v in body.items()]
    lines: list[str] = []
    run: list[tuple[str, str]] = []

    def flush() -> None:
        width = max((len(k) for k, _ in run), default=0)
        lines.extend(f"{pad}{k.ljust(width)} = {v}" for k, v in run)
        run.clear()

    for key, text in rendered:
        if "\n" in text:
            flush()
            lines.append(f"{pad}{key} = {text}")
        else:
            run.append((key, text))
    flush()
    return lines


def render_body(body: dict, indent: int = 1) -> list[str]:
    """A block body: attributes first (aligned), then nested blocks, each after a blank line."""
    pad = "  " * indent
    attributes = {k: v for k, v in body.items() if not _is_blocks(v)}
    lines = _attribute_lines(attributes, indent)
    for name, value in body.items():
        if not _is_blocks(value):
            continue
        for block in value if isinstance(value, list) else [value]:
            lines += ["", f"{pad}{name} {{", *render_body(block.body, indent + 1), f"{pad}}}"]
    return lines


def _is_blocks(value: Any) -> bool:
    return isinstance(value, Block) or (isinstance(value, list) and bool(value)
                                        and all(isinstance(v, Block) for v in value))


# ---- the table of resource kinds -----------------------------------------------------------------------

@dataclass
class Item:
    """One live resource to adopt: its Terraform type, label (address = type.label) and import id."""

    tf_type: str
    label: str
    import_id: str
    live: dict

    @property
    def address(self) -> str:
        return f"{self.tf_type}.{self.label}"


class Refs:
    """Terraform addresses of the exported resources, by (type, import id)."""

    def __init__(self, items: list[Item]):
        self._by_id = {(i.tf_type, i.import_id): i for i in items}

    def get(self, tf_type: str, import_id: str) -> Item | None:
        return self._by_id.get((tf_type, import_id))

    def of_type(self, tf_type: str) -> list[Item]:
        return [i for (t, _), i in self._by_id.items() if t == tf_type]

    def attr(self, tf_type: str, import_id: str, attribute: str, literal: Any = None) -> Any:
        """tf_type.label.attribute when that resource is exported, else the live literal value."""
        item = self.get(tf_type, import_id)
        if item is None:
            return import_id if literal is None else literal
        return Ref(f"{item.address}.{attribute}")


@dataclass
class Discovery:
    """What discovery has found so far (kinds run in table order) and why a kind found nothing."""

    ctx: Context
    found: dict[str, list[dict]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Kind:
    tf_type: str
    what: str                                         # for people: "NLB", "listener"
    discover: Callable[[Discovery], list[dict]]       # live records (read-only calls)
    import_id: Callable[[dict], str]                  # the AWS provider's documented import id
    label: Callable[[dict], str]                      # readable; made unique per type
    body: Callable[[dict, Refs], dict]                # the resource's arguments, from the live record


def slug(text: str) -> str:
    label = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "this"
    return label if label[0].isalpha() else f"r_{label}"


def _tags(tags: Any) -> dict[str, str]:
    """Tags as a sorted map, from any AWS shape ({k: v}, [{Key, Value}], [{key, value}])."""
    if isinstance(tags, list):
        tags = {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in tags}
    return dict(sorted((tags or {}).items()))


def _with_tags(body: dict, tags: Any) -> dict:
    tags = _tags(tags)
    return {**body, "tags": tags} if tags else body


def _compact(body: dict) -> dict:
    """Leave out arguments AWS reports as absent (None), so the provider's defaults apply as they did."""
    return {k: v for k, v in body.items() if v is not None}


def _elb_tags(ctx: Context, arns: list[str]) -> dict[str, list[dict]]:
    return aws_elbv2.tags(ctx.aws, arns)


# -- security groups (the V2 link's, an ALB's, awsvpc tasks': whatever the runbook created) --

def security_group_body(group: dict, refs: Refs) -> dict:
    # No inline ingress/egress blocks: the provider then leaves the group's rules alone, and the rules the
    # runbook added are their own aws_vpc_security_group_ingress_rule resources.
    body = {"name": group["GroupName"], "description": group.get("Description"), "vpc_id": group.get("VpcId")}
    return _with_tags(_compact(body), group.get("Tags"))


# -- load balancer, target groups, listeners --

def discover_load_balancers(d: Discovery) -> list[dict]:
    """Ours under any name it may have had (NLB or ALB), as destroy finds them."""
    found, why_not = [], []
    for name in d.ctx.names.load_balancer_names:
        try:
            lb = aws_elbv2.load_balancer(d.ctx.aws, d.ctx.names, name)
        except NotOurs:
            why_not.append(f"{name}: exists but is {NOT_OURS}")
            continue
        if lb is None:
            why_not.append(f"{name}: not found")
            continue
        arn = lb["LoadBalancerArn"]
        attributes = d.ctx.aws.elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
        found.append({**lb, "Attributes": {a["Key"]: a["Value"] for a in attributes},
                      "Tags": _elb_tags(d.ctx, [arn])[arn]})
    if not found:
        d.notes["aws_lb"] = "; ".join(why_not)
    return found


def load_balancer_body(lb: dict, refs: Refs) -> dict:
    body = {
        "name": lb["LoadBalancerName"],
        "internal": lb["Scheme"] == "internal",
        "load_balancer_type": lb["Type"],
        "subnets": sorted(az["SubnetId"] for az in lb.get("AvailabilityZones", [])),
        "security_groups": _sort_security_groups(
            [refs.attr("aws_security_group", g, "id") for g in lb.get("SecurityGroups") or []]) or None,
        "ip_address_type": lb.get("IpAddressType"),
    }
    attributes = lb.get("Attributes", {})
    if lb["Type"] == "network":
        # Off by default for NLBs; the runbook turns it on, so say so or Terraform would turn it off.
        body["enable_cross_zone_load_balancing"] = attributes.get("load_balancing.cross_zone.enabled") == "true"
    if attributes.get("deletion_protection.enabled") == "true":
        body["enable_deletion_protection"] = True
    return _with_tags(_compact(body), lb.get("Tags"))


def _sort_security_groups(values: list) -> list:
    return sorted(values, key=lambda v: v.expr if isinstance(v, Ref) else v)


def discover_target_groups(d: Discovery) -> list[dict]:
    groups = aws_elbv2.target_groups(d.ctx.aws, d.ctx.names)
    tags = _elb_tags(d.ctx, [g["TargetGroupArn"] for g in groups])
    return [{**g, "Tags": tags.get(g["TargetGroupArn"], [])} for g in groups]


def target_group_body(tg: dict, refs: Refs) -> dict:
    health = {
        "enabled": tg.get("HealthCheckEnabled", True),
        "protocol": tg.get("HealthCheckProtocol"),
        "port": tg.get("HealthCheckPort"),
        "path": tg.get("HealthCheckPath"),
        "matcher": (tg.get("Matcher") or {}).get("HttpCode"),
        "interval": tg.get("HealthCheckIntervalSeconds"),
        "timeout": tg.get("HealthCheckTimeoutSeconds"),
        "healthy_threshold": tg.get("HealthyThresholdCount"),
        "unhealthy_threshold": tg.get("UnhealthyThresholdCount"),
    }
    body = {
        "name": tg["TargetGroupName"],
        "port": tg.get("Port"),
        "protocol": tg.get("Protocol"),
        "vpc_id": tg.get("VpcId"),
        "target_type": tg.get("TargetType"),
        "ip_address_type": tg.get("IpAddressType"),
        "health_check": Block(_compact(health)),
    }
    return _with_tags(_compact(body), tg.get("Tags"))


def discover_listeners(d: Discovery) -> list[dict]:
    listeners = [li for lb in d.found.get("aws_lb", []) for li in aws_elbv2.listeners(d.ctx.aws,
                                                                                      lb["LoadBalancerArn"])]
    names = {lb["LoadBalancerArn"]: lb["LoadBalancerName"] for lb in d.found.get("aws_lb", [])}
    tags = _elb_tags(d.ctx, [li["ListenerArn"] for li in listeners])
    return [{**li, "Tags": tags.get(li["ListenerArn"], []), "LoadBalancerName": names[li["LoadBalancerArn"]]}
            for li in listeners]


def _action(action: dict, refs: Refs) -> Block:
    body: dict[str, Any] = {"type": action["Type"]}
    if action.get("TargetGroupArn"):
        body["target_group_arn"] = refs.attr("aws_lb_target_group", action["TargetGroupArn"], "arn")
    return Block(body)


def listener_body(listener: dict, refs: Refs) -> dict:
    actions = sorted(listener.get("DefaultActions", []), key=lambda a: a.get("Order", 0))
    body = {
        "load_balancer_arn": refs.attr("aws_lb", listener["LoadBalancerArn"], "arn"),
        "port": listener["Port"],
        "protocol": listener["Protocol"],
        # TLS/HTTPS listeners only; AWS reports a default policy on every NLB listener.
        "ssl_policy": listener.get("SslPolicy") if listener["Protocol"] in ("TLS", "HTTPS") else None,
        "certificate_arn": (listener.get("Certificates") or [{}])[0].get("CertificateArn"),
        "default_action": [_action(a, refs) for a in actions],
    }
    return _with_tags(_compact(body), listener.get("Tags"))


# -- VPC link --

def discover_vpc_links(d: Discovery) -> list[dict]:
    return [link for link in vpclinks.owned_links(d.ctx.aws, d.ctx.names) if link.get("status") != "DELETING"]


def vpc_link_body(link: dict, refs: Refs) -> dict:
    body = {
        "name": link["name"],
        "description": link.get("description") or None,
        "target_arns": [refs.attr("aws_lb", arn, "arn") for arn in link.get("targetArns", [])],
    }
    return _with_tags(_compact(body), link.get("tags"))


def vpc_link_v2_body(link: dict, refs: Refs) -> dict:
    body = {
        "name": link["name"],
        "subnet_ids": sorted(link.get("subnetIds", [])),
        "security_group_ids": _sort_security_groups(
            [refs.attr("aws_security_group", g, "id") for g in link.get("securityGroupIds", [])]),
    }
    return _with_tags(body, link.get("tags"))


# -- ECS --

def owned_task_definitions(ctx: Context) -> list[dict]:
    """Every ACTIVE revision of our family tagged as ours (what destroy deregisters), with its tags."""
    return aws_ecs.owned_task_definitions(ctx.aws, ctx.names)


def _container(container: dict) -> dict:
    """A container definition as registered: empty lists ECS adds on describe are left out, lists of
    name/value pairs sorted, keys sorted, so the export is stable and plans without a diff."""
    out = {}
    for key in sorted(container):
        value = container[key]
        if value in ([], {}, None):
            continue
        if key in ("environment", "secrets") and isinstance(value, list):
            value = sorted(value, key=lambda e: e.get("name", ""))
        out[key] = value
    return out


def task_definition_body(td: dict, refs: Refs) -> dict:
    body = {
        "family": td["family"],
        "network_mode": td.get("networkMode"),
        "requires_compatibilities": sorted(td.get("requiresCompatibilities") or []) or None,
        "cpu": td.get("cpu"),
        "memory": td.get("memory"),
        "execution_role_arn": td.get("executionRoleArn"),
        "task_role_arn": td.get("taskRoleArn"),
        "container_definitions": Call("jsonencode", [_container(c) for c in td.get("containerDefinitions", [])]),
    }
    return _with_tags(_compact(body), td.get("tags"))


def discover_services(d: Discovery) -> list[dict]:
    try:
        service = aws_ecs.service(d.ctx.aws, d.ctx.names, d.ctx.params.cluster)
    except NotOurs as exc:
        d.notes["aws_ecs_service"] = f"skipped: {exc}"
        return []
    return [service] if service else []


def service_body(service: dict, refs: Refs) -> dict:
    deployment = service.get("deploymentConfiguration", {})
    network = (service.get("networkConfiguration") or {}).get("awsvpcConfiguration")
    body = {
        "name": service["serviceName"],
        "cluster": service["clusterArn"],
        "task_definition": refs.attr("aws_ecs_task_definition", service["taskDefinition"], "arn"),
        "desired_count": service.get("desiredCount"),
        "launch_type": service.get("launchType"),
        "deployment_maximum_percent": deployment.get("maximumPercent"),
        "deployment_minimum_healthy_percent": deployment.get("minimumHealthyPercent"),
        "health_check_grace_period_seconds": service.get("healthCheckGracePeriodSeconds"),
        "propagate_tags": service.get("propagateTags"),
        "enable_ecs_managed_tags": service.get("enableECSManagedTags"),
        "load_balancer": [Block({
            "target_group_arn": refs.attr("aws_lb_target_group", lb["targetGroupArn"], "arn"),
            "container_name": lb["containerName"],
            "container_port": lb["containerPort"],
        }) for lb in service.get("loadBalancers", [])],
        "network_configuration": Block(_compact({
            "subnets": sorted(network.get("subnets", [])),
            "security_groups": _sort_security_groups(
                [refs.attr("aws_security_group", g, "id") for g in network.get("securityGroups", [])]),
            "assign_public_ip": network.get("assignPublicIp") == "ENABLED",
        })) if network else None,
        "placement_constraints": [Block(_compact({"type": c["type"], "expression": c.get("expression")}))
                                  for c in service.get("placementConstraints", [])],
        "ordered_placement_strategy": [Block(_compact({"type": s["type"], "field": s.get("field")}))
                                       for s in service.get("placementStrategy", [])],
    }
    body = {k: v for k, v in body.items() if v != []}
    return _with_tags(_compact(body), service.get("tags"))


def _service_import_id(service: dict) -> str:
    return f"{service['clusterArn'].split('/')[-1]}/{service['serviceName']}"


# -- security group rules --

def owned_security_group_rules(ctx: Context) -> list[dict]:
    """The ingress rules tagged as ours in any security group of the VPC (what destroy revokes)."""
    return aws_ec2.owned_rules_in_vpc(ctx.aws, ctx.names, ctx.params.vpc_id)


def _rule_source(rule: dict) -> str:
    return (rule.get("CidrIpv4") or rule.get("CidrIpv6") or rule.get("PrefixListId")
            or (rule.get("ReferencedGroupInfo") or {}).get("GroupId") or "any")


def security_group_rule_body(rule: dict, refs: Refs) -> dict:
    referenced = (rule.get("ReferencedGroupInfo") or {}).get("GroupId")
    body = {
        "security_group_id": refs.attr("aws_security_group", rule["GroupId"], "id"),
        "ip_protocol": rule["IpProtocol"],
        # AWS reports -1 for "all ports" (protocol -1); the provider wants them left out then.
        "from_port": rule.get("FromPort") if rule["IpProtocol"] != "-1" else None,
        "to_port": rule.get("ToPort") if rule["IpProtocol"] != "-1" else None,
        "cidr_ipv4": rule.get("CidrIpv4"),
        "cidr_ipv6": rule.get("CidrIpv6"),
        "prefix_list_id": rule.get("PrefixListId"),
        "referenced_security_group_id": refs.attr("aws_security_group", referenced, "id") if referenced else None,
        "description": rule.get("Description") or None,
    }
    return _with_tags(_compact(body), rule.get("Tags"))


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


def _security_groups(d: Discovery) -> list[dict]:
    return aws_ec2.security_groups(d.ctx.aws, d.ctx.names, d.ctx.params.vpc_id, d.ctx.params.environment)


def _vpc_links_v2(d: Discovery) -> list[dict]:
    return [v for v in vpclinks.owned_links_v2(d.ctx.aws, d.ctx.names) if v.get("status") != "DELETING"]


def kinds() -> list[Kind]:
    """The table, in dependency order (a kind's discovery may read what earlier kinds found)."""
    return [
        Kind("aws_security_group", "security group", _security_groups, lambda r: r["GroupId"],
             lambda r: slug(r["GroupName"]), security_group_body),
        Kind("aws_lb", "load balancer", discover_load_balancers, lambda r: r["LoadBalancerArn"],
             lambda r: slug(r["LoadBalancerName"]), load_balancer_body),
        Kind("aws_lb_target_group", "target group", discover_target_groups, lambda r: r["TargetGroupArn"],
             lambda r: slug(r["TargetGroupName"]), target_group_body),
        Kind("aws_lb_listener", "listener", discover_listeners, lambda r: r["ListenerArn"],
             lambda r: slug(f"{r['LoadBalancerName']}_{r['Protocol']}_{r['Port']}"), listener_body),
        Kind("aws_api_gateway_vpc_link", "VPC link", discover_vpc_links, lambda r: r["id"],
             lambda r: slug(r["name"]), vpc_link_body),
        Kind("aws_apigatewayv2_vpc_link", "VPC link V2",
             _vpc_links_v2, lambda r: r["id"],
             lambda r: slug(r["name"]), vpc_link_v2_body),
        Kind("aws_ecs_task_definition", "task definition", lambda d: owned_task_definitions(d.ctx),
             lambda r: r["taskDefinitionArn"], lambda r: slug(f"{r['family']}_{r['revision']}"),
             task_definition_body),
        Kind("aws_vpc_security_group_ingress_rule", "security group rule",
             lambda d: owned_security_group_rules(d.ctx), lambda r: r["SecurityGroupRuleId"],
             lambda r: slug(f"{r['GroupId']}_{r['IpProtocol']}_{r.get('FromPort')}_{_rule_source(r)}"),
             security_group_rule_body),
        Kind("aws_ecs_service", "ECS service", discover_services, _service_import_id,
             lambda r: slug(r["serviceName"]), service_body),
        Kind("aws_api_gateway_rest_api", "REST API", discover_rest_apis, lambda r: r["id"],
             lambda r: slug(r["name"]), rest_api_body),
        Kind("aws_api_gateway_resource", "resource {proxy+}", discover_proxy_resources,
             lambda r: f"{r['restApiId']}/{r['id']}", lambda r: slug(f"{r['apiName']}_proxy"), resource_body),
        Kind("aws_api_gateway_method", "method ANY", discover_methods,
             lambda r: f"{r['restApiId']}/{r['resourceId']}/{r['httpMethod']}",
             lambda r: slug(f"{r['apiName']}_proxy_{r['httpMethod']}"), method_body),
        Kind("aws_api_gateway_integration", "integration", discover_integrations,
             lambda r: f"{r['restApiId']}/{r['resourceId']}/{r['methodHttpMethod']}",
             lambda r: slug(f"{r['apiName']}_proxy_{r['methodHttpMethod']}"), integration_body),
        Kind("aws_api_gateway_stage", "stage", discover_stages, lambda r: f"{r['restApiId']}/{r['stageName']}",
             lambda r: slug(f"{r['apiName']}_{r['stageName']}"), stage_body),
        Kind("aws_api_gateway_deployment", "deployment", discover_deployments,
             lambda r: f"{r['restApiId']}/{r['id']}", lambda r: slug(f"{r['apiName']}_{r['stageName']}"),
             deployment_body),
        Kind("aws_api_gateway_base_path_mapping", "base path mapping", discover_base_path_mappings,
             _mapping_import_id, lambda r: slug(f"{r['domainName']}_{r['basePath']}"), base_path_mapping_body),
    ]


# ---- export --------------------------------------------------------------------------------------------

@dataclass
class Export:
    """What was found (items, in table order) and, per kind, why nothing was when nothing was."""

    params: Params
    items: list[Item]
    skipped: dict[str, str]
    files: dict[str, str]

    def summary(self, out: Path) -> str:
        lines = [f"export {self.params.environment} --format terraform: {len(self.items)} resource(s) to import "
                 f"-> {out}/"]
        lines += [f"  import  {i.address:<70} {i.import_id}" for i in self.items]
        lines += [f"  skipped {tf_type:<70} {why}" for tf_type, why in self.skipped.items()]
        lines.append(f"  next: cd {out} && terraform init && terraform plan  (expect imports only; see README.md)")
        return "\n".join(lines)


def _refuse_mutation(model: Any, **_: Any) -> None:
    if aws_mod.is_mutating(model.name):
        raise MutationRefused(f"export is read-only but tried {model.service_model.service_name}.{model.name}; "
                              "the call was not sent. Please report this as a bug.")


def connect(params: Params) -> Context:
    """A read-only context: mutating calls are refused before they are sent."""
    if params.sandbox:
        if not os.environ.get("AWS_ENDPOINT_URL") and sandbox_link.running_sandbox() is None:
            raise NothingToExport(
                "params say sandbox: true but no sandbox is running, so nothing has been applied there (a "
                "sandbox's resources live only as long as it does). Start `runbook sandbox`, run `runbook apply` "
                "against it, then export. Nothing was written.")
        sandbox_link.use_running_sandbox()
    aws = aws_mod.connect(params)
    aws.session.events.register("before-call", _refuse_mutation)
    identity = aws_mod.check_account(aws, params)
    return Context(params=params, aws=aws, names=Names(params), mode="plan", identity=identity)


def discover(ctx: Context) -> tuple[list[Item], dict[str, str]]:
    """Every live resource of this environment's runbook, as Items in table order; and why kinds are empty."""
    d = Discovery(ctx)
    table: dict[str, Kind] = {}
    for kind in kinds():
        # A type may have several rows (e.g. NLB and ALB discovery); their records go together.
        d.found[kind.tf_type] = d.found.get(kind.tf_type, []) + kind.discover(d)
        table.setdefault(kind.tf_type, kind)
    items: list[Item] = []
    skipped: dict[str, str] = {}
    for tf_type, kind in table.items():
        records = sorted(d.found[tf_type], key=kind.import_id)
        if not records:
            skipped[tf_type] = d.notes.get(tf_type, f"no {kind.what} of this runbook's exists")
        used: set[str] = set()
        for record in records:
            label = kind.label(record)
            if label in used:  # two of a kind with one name (e.g. left by an interrupted run): add the id
                label = slug(f"{label}_{kind.import_id(record).rsplit('/', 1)[-1]}")
            used.add(label)
            items.append(Item(tf_type, label, kind.import_id(record), record))
    return items, skipped


def render(params: Params, items: list[Item], skipped: dict[str, str]) -> dict[str, str]:
    """The files of the export directory, by name; the same live state always gives the same bytes."""
    refs = Refs(items)
    bodies = {k.tf_type: k.body for k in reversed(kinds())}
    header = HEADER.format(env=params.environment)
    versions = "\n".join([
        header.rstrip("\n"), "",
        "terraform {",
        f"  required_version = {hcl_string(TERRAFORM_VERSION)}", "",
        "  required_providers {",
        "    aws = {",
        '      source  = "hashicorp/aws"',
        f"      version = {hcl_string(AWS_PROVIDER_VERSION)}",
        "    }",
        "  }",
        "}", "",
        'provider "aws" {',
        f"  region              = {hcl_string(params.region)}",
        f"  allowed_account_ids = [{hcl_string(params.account_id)}]",
        "}", "",
    ])
    imports = [header]
    resources = [header]
    for item in items:
        imports += ["import {", f"  to = {item.address}", f"  id = {hcl_string(item.import_id)}", "}", ""]
        body = bodies[item.tf_type](item.live, refs)
        resources += [f'resource "{item.tf_type}" "{item.label}" {{', *render_body(body), "}", ""]
    return {
        "versions.tf": versions,
        "imports.tf": "\n".join(imports),
        "main.tf": "\n".join(resources),
        "README.md": _readme(params, items, skipped),
    }


def _readme(params: Params, items: list[Item], skipped: dict[str, str]) -> str:
    rows = "\n".join(f"| `{i.address}` | `{i.import_id}` |" for i in items)
    v2 = any(i.tf_type == "aws_api_gateway_integration" and i.live.get("integrationTarget") for i in items)
    v2_note = ("\nThe integration uses a VPC link V2 (`integration_target` names the load balancer): that argument "
               "needs an AWS\nprovider release that supports VPC link V2 for REST APIs (November 2025 or later); "
               "raise the provider version\nin `versions.tf` if `terraform validate` does not know it.\n") if v2 else ""
    missing = "\n".join(f"- `{t}`: {why}" for t, why in skipped.items()) or "- nothing: every kind was found"
    return f"""# Terraform for `{params.environment}` ({params.service.name}), adopted from the runbook

Written by `runbook export {params.environment} --format terraform` from the live state of account
{params.account_id}, region {params.region}. Export only reads; running it again on the same state writes the
same files.

## Adopt it
1. Use credentials for account {params.account_id} (the provider refuses any other: `allowed_account_ids`).
2. `terraform init` (Terraform {TERRAFORM_VERSION}: `import` blocks; AWS provider {AWS_PROVIDER_VERSION}).
3. `terraform plan`: it must show **{len(items)} to import, 0 to add, 0 to change, 0 to destroy**. If it shows
   a change, the resource's argument in `main.tf` differs from what the provider reads back: set it to the
   value the plan shows as current (nothing has been changed yet), and plan again.
4. `terraform apply`: imports into state, changes nothing in AWS. `imports.tf` can then be deleted.
5. From now on change this setup with Terraform only: do not run `runbook apply`, `repair` or `destroy` for
   `{params.environment}` again (`runbook verify` stays useful; it only reads).

## What is here
- `versions.tf`: Terraform and AWS provider versions, the provider's region and account.
- `imports.tf`: one `import` block per resource, with its live id.
- `main.tf`: the resources, with their live arguments and tags; they refer to each other by address
  (listener -> `aws_lb....arn`), and to pre-existing things (VPC, subnets, cluster, instance security groups,
  custom domain, execution role) by literal id: those were not created by the runbook and are not imported.

The integration reads the VPC link id from the stage variable: `"$${{stageVariables.vpcLinkId}}"` is HCL for
the literal `${{stageVariables.vpcLinkId}}`. Only the deployment each stage serves is imported; older
deployments are history that API Gateway deletes with the REST API.
{v2_note}
| address | import id |
| --- | --- |
{rows}

## Not found (nothing imported)
{missing}
"""


def write(out: Path, files: dict[str, str]) -> None:
    """Write (or overwrite) the export's own files; anything else in the directory (.terraform, state) stays."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)


def export(env: str, out: str | Path | None = None, fmt: str = "terraform") -> tuple[Export, Path]:
    """Read the live state of ENV and write the Terraform directory; NothingToExport (exit 2) if nothing exists."""
    if fmt not in FORMATS:
        raise NothingToExport(f"--format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    params = load_params(env)  # ParamsError: before any AWS call
    ctx = connect(params)
    items, skipped = discover(ctx)
    if not items:
        raise NothingToExport(
            f"nothing to export: no resource of {params.environment}'s runbook exists in account "
            f"{params.account_id}, region {params.region} (never applied, or destroyed). Run `runbook apply "
            f"{env}` first. Nothing was written.")
    target = Path(out) if out else Path("terraform") / params.environment
    files = render(params, items, skipped)
    write(target, files)
    return Export(params, items, skipped, files), target
