"""The table of resource kinds, in dependency order."""

from __future__ import annotations

from vpclink_runbooks.aws import ec2 as aws_ec2
from vpclink_runbooks.aws import vpclinks
from vpclink_runbooks.export.kinds_api import (
    _mapping_import_id,
    base_path_mapping_body,
    deployment_body,
    discover_base_path_mappings,
    discover_deployments,
    discover_integrations,
    discover_methods,
    discover_proxy_resources,
    discover_rest_apis,
    discover_stages,
    integration_body,
    method_body,
    resource_body,
    rest_api_body,
    stage_body,
)
from vpclink_runbooks.export.kinds_network import (
    _rule_source,
    _service_import_id,
    discover_listeners,
    discover_load_balancers,
    discover_services,
    discover_target_groups,
    discover_vpc_links,
    listener_body,
    load_balancer_body,
    owned_security_group_rules,
    owned_task_definitions,
    security_group_body,
    security_group_rule_body,
    service_body,
    target_group_body,
    task_definition_body,
    vpc_link_body,
    vpc_link_v2_body,
)
from vpclink_runbooks.export.model import Discovery, Kind, slug


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
