"""Export kinds of the network and ECS side: security groups, load balancer, target groups, listeners, VPC
links, task definitions, the ECS service and the ingress rules the runbook added."""

from __future__ import annotations

from typing import Any

from vpclink_runbooks.aws import ec2 as aws_ec2
from vpclink_runbooks.aws import ecs as aws_ecs
from vpclink_runbooks.aws import elbv2 as aws_elbv2
from vpclink_runbooks.aws import vpclinks
from vpclink_runbooks.context import Context
from vpclink_runbooks.errors import NotOurs
from vpclink_runbooks.export.model import Discovery, Refs, _compact, _elb_tags, _with_tags
from vpclink_runbooks.export.rendering import Block, Call, Ref
from vpclink_runbooks.steps.destroy import NOT_OURS

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
        # Set only with security groups; the runbook turns it off for a V1 link (AWS's default is on).
        if lb.get("SecurityGroups") and lb.get("EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic"):
            body["enforce_security_group_inbound_rules_on_private_link_traffic"] = lb[
                "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic"]
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
