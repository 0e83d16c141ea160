"""Checks of the API hops: the base path mapping, the stage and the integration."""

from __future__ import annotations

from urllib.parse import urlparse

from vpclink_runbooks.checks.inventory import Inventory
from vpclink_runbooks.checks.registry import Result, check
from vpclink_runbooks.steps.api import FINGERPRINT_PREFIX, INTEGRATION_TIMEOUT_MS, STAGE_VARIABLE, fingerprint

# -- mapping --

@check(id="mapping.exists", hop="mapping", severity="error", repaired_by="api",
       remedy="create the base path mapping on the custom domain to our API's stage")
@check(id="mapping.target", hop="mapping", severity="error", repaired_by="api",
       remedy="point the mapping at our API and stage (repair does only if the API it names is ours)")
def mapping_points_at_stage(inv: Inventory) -> Result:
    """The base path mapping on the shared custom domain serves our API's stage."""
    a = inv.params.api
    where = f"{a.domain_name}/{a.base_path}"
    if inv.mapping is None:
        return Result("mapping.exists", "mapping", "fail", f"no base path mapping {where}",
                      f"create the base path mapping {where} -> our API, stage {a.stage} (repair does)")
    api_id = (inv.api or {}).get("id")
    if inv.mapping["restApiId"] != api_id or inv.mapping.get("stage") != a.stage:
        return Result("mapping.target", "mapping", "fail",
                      f"{where} maps to API {inv.mapping['restApiId']} stage {inv.mapping.get('stage')}; "
                      f"expected API {api_id} stage {a.stage}",
                      f"point the mapping at API {api_id} stage {a.stage} (repair does, if the API it names "
                      "is ours)")
    return Result("mapping.target", "mapping", "pass", f"{where} -> API {api_id} stage {a.stage}")


# -- stage --

@check(id="stage.exists", hop="stage", severity="error", repaired_by="api",
       remedy="create a deployment to the stage")
@check(id="stage.vpc_link_variable", hop="stage", severity="error", repaired_by="api",
       remedy="set the stage variable vpcLinkId to our VPC link's id")
@check(id="stage.deployment_current", hop="stage", severity="error", repaired_by="api",
       remedy="deploy the API to the stage, or put the integration back to what params say")
def stage_deployed_with_link(inv: Inventory) -> list[Result]:
    """The stage exists, names our VPC link in its variable, and serves the current integration."""
    a = inv.params.api
    if inv.stage is None:
        return [Result("stage.exists", "stage", "fail", f"stage {a.stage} does not exist",
                       f"create a deployment to stage {a.stage} (repair does)")]
    out = []
    link_id = (inv.link or {}).get("id")
    value = inv.stage.get("variables", {}).get(STAGE_VARIABLE)
    if link_id is None:
        out.append(Result("stage.vpc_link_variable", "stage", "skip",
                          f"{STAGE_VARIABLE}={value}; there is no VPC link of ours to compare (see vpc_link.exists)"))
    elif value != link_id:
        said = "is missing" if value is None else f"is {value}"
        out.append(Result("stage.vpc_link_variable", "stage", "fail",
                          f"stage {a.stage} variable {STAGE_VARIABLE} {said}; our VPC link is {link_id}: API "
                          "Gateway answers 'Invalid VpcLink id referenced in integration'",
                          f"set the stage variable {STAGE_VARIABLE} to {link_id} (repair does)"))
    else:
        out.append(Result("stage.vpc_link_variable", "stage", "pass", f"{STAGE_VARIABLE}={value}"))
    if inv.integration is None:
        out.append(Result("stage.deployment_current", "stage", "skip", "no integration to compare the deployment "
                          "with (see integration.exists)"))
        return out
    deployed = (inv.deployment or {}).get("description", "")
    live = FINGERPRINT_PREFIX + fingerprint(inv.integration)
    if deployed != live:
        out.append(Result("stage.deployment_current", "stage", "fail",
                          f"stage {a.stage} serves deployment {inv.stage.get('deploymentId')} "
                          f"('{deployed or 'no description'}'), made before the integration last changed "
                          f"(now '{live}'): the change is not live",
                          f"deploy the API to stage {a.stage} (repair redeploys, or puts the integration back "
                          "to what params say)"))
    else:
        out.append(Result("stage.deployment_current", "stage", "pass",
                          f"deployment {inv.stage.get('deploymentId')} serves the current integration"))
    return out


# -- integration --

@check(id="integration.exists", hop="integration", severity="error", repaired_by="api",
       remedy="create the HTTP_PROXY integration on ANY /{proxy+} over the VPC link")
@check(id="integration.target", hop="integration", severity="error", repaired_by="api",
       remedy="put the integration back to HTTP_PROXY over the VPC link to the listener, and redeploy")
@check(id="integration.integration_target", hop="integration", severity="error", repaired_by="api",
       remedy="put the integration with integrationTarget = the load balancer ARN (V2 link), and redeploy")
@check(id="integration.timeout", hop="integration", severity="error", repaired_by="api",
       remedy="set the integration timeout back to the default (29 s)")
def integration_reaches_listener(inv: Inventory) -> list[Result]:
    """ANY /{proxy+} is HTTP_PROXY over the VPC link to the NLB listener, with the default timeout."""
    integ = inv.integration
    if integ is None:
        return [Result("integration.exists", "integration", "fail", "no ANY integration on /{proxy+}",
                       "create the HTTP_PROXY integration over the VPC link (repair does)")]
    problems = []
    if integ.get("type") != "HTTP_PROXY" or integ.get("connectionType") != "VPC_LINK":
        problems.append(f"type {integ.get('type')} connection {integ.get('connectionType')}")
    conn = integ.get("connectionId")
    v2 = inv.params.vpc_link.version == 2
    allowed = ((inv.link or {}).get("id"),) if v2 else (f"${{stageVariables.{STAGE_VARIABLE}}}",
                                                         (inv.link or {}).get("id"))
    if conn not in allowed:
        problems.append(f"connectionId {conn}" + (f"; the V2 link is {(inv.link or {}).get('id')}" if v2 else ""))
    uri = urlparse(integ.get("uri", ""))
    if inv.lb and uri.hostname != inv.lb["DNSName"].lower():
        problems.append(f"uri host {uri.hostname} is not the NLB {inv.lb['DNSName']}")
    if uri.port != inv.params.listener_port:
        problems.append(f"uri port {uri.port}; the NLB listener is on {inv.params.listener_port}")
    out = []
    if problems:
        out.append(Result("integration.target", "integration", "fail", "; ".join(problems),
                          "put the integration back to HTTP_PROXY over the VPC link to the NLB listener, and "
                          "redeploy (repair does)"))
    else:
        out.append(Result("integration.target", "integration", "pass", f"HTTP_PROXY {integ['uri']} via {conn}"))
    if v2:
        target = integ.get("integrationTarget")
        lb_arn = (inv.lb or {}).get("LoadBalancerArn")
        if not target or (lb_arn and target != lb_arn):
            out.append(Result("integration.integration_target", "integration", "fail",
                              f"integrationTarget is {target or 'not set'}; a V2 VPC link needs the integration to "
                              f"name the load balancer ({lb_arn or inv.names.nlb}), or API Gateway has nowhere to send "
                              "requests",
                              "put the integration with integrationTarget = the load balancer ARN and redeploy "
                              "(repair does)"))
        else:
            out.append(Result("integration.integration_target", "integration", "pass",
                              f"integrationTarget {target.split('/')[-2]}/{target.split('/')[-1]}"))
    timeout = integ.get("timeoutInMillis")
    if timeout is None or int(timeout) == INTEGRATION_TIMEOUT_MS:
        out.append(Result("integration.timeout", "integration", "pass",
                          f"timeoutInMillis {timeout or INTEGRATION_TIMEOUT_MS}: a backend slower than "
                          f"{INTEGRATION_TIMEOUT_MS / 1000:g} s gets 504"))
    elif int(timeout) < INTEGRATION_TIMEOUT_MS:
        out.append(Result("integration.timeout", "integration", "fail",
                          f"timeoutInMillis {timeout}: requests slower than {int(timeout) / 1000:g} s get 504 "
                          f"(the runbook sets {INTEGRATION_TIMEOUT_MS})",
                          f"set the integration timeout back to {INTEGRATION_TIMEOUT_MS} ms (repair does)"))
    else:
        out.append(Result("integration.timeout", "integration", "warn",
                          f"timeoutInMillis {timeout}, above the {INTEGRATION_TIMEOUT_MS} ms default",
                          "keep it only if the account's integration timeout quota was raised"))
    return out

