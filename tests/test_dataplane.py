"""The sandbox's data plane end to end: after one apply of params/local.yaml, requests through the front (with
the custom domain's or the invoke URL's Host header) are resolved from the emulator's live state as API Gateway
resolves them and reach the task's stand-in; failures answer as API Gateway does and name the deciding hop."""

from __future__ import annotations

import http.client
import json
import urllib.request
from urllib.parse import urlsplit

import pytest

from vpclink_runbooks.run.runner import run

from .conftest import ROOT

pytestmark = pytest.mark.notebooks

LOCAL = str(ROOT / "params" / "local.yaml")
BASE, DOMAIN = "local-orders", "api.example.com"


def send(box, host: str, path: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict, bytes]:
    front = urlsplit(box.front)
    conn = http.client.HTTPConnection(front.hostname, front.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def applied(sandbox):
    result = run("apply", LOCAL)
    assert result.exit_code == 0, json.loads((result.run_dir / "run.json").read_text()).get("error")
    gw = sandbox.session().client("apigateway")
    api_id = next(a["id"] for a in gw.get_rest_apis()["items"] if a["name"] == BASE)
    return sandbox, gw, api_id


def proxy_resource(gw, api_id: str) -> str:
    return next(r["id"] for r in gw.get_resources(restApiId=api_id)["items"] if r.get("pathPart") == "{proxy+}")


def test_the_front_is_announced_and_discoverable(sandbox):
    assert sandbox.front.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(sandbox.endpoint + "/_sandbox/front", timeout=5) as resp:
        assert json.loads(resp.read()) == {"front": sandbox.front}


def test_custom_domain_request_reaches_the_service_stand_in(applied):
    box, _, _ = applied
    status, headers, body = send(box, DOMAIN, "/orders/anything?x=1", method="POST", body=b"{}")
    assert status == 200, body
    assert headers["x-sandbox-hop"] == "service"
    assert headers["x-amzn-requestid"]
    answer = json.loads(body)
    assert answer["container_port"] == 8080
    assert answer["method"] == "POST"
    assert answer["path"] == "/anything"
    assert headers["x-sandbox-task"] == answer["task_id"]


def test_host_header_port_is_ignored(applied):
    box, _, _ = applied
    status, headers, _ = send(box, f"{DOMAIN}:443", "/orders/a/b")
    assert (status, headers["x-sandbox-hop"]) == (200, "service")


def test_invoke_url_serves_the_stage(applied):
    box, _, api_id = applied
    status, headers, body = send(box, f"{api_id}.execute-api.{box.region}.amazonaws.com", "/prod/deep/path")
    assert status == 200, body
    assert json.loads(body)["path"] == "/deep/path"


def test_invoke_url_without_a_route_is_missing_authentication_token(applied):
    box, _, api_id = applied
    status, headers, body = send(box, f"{api_id}.execute-api.{box.region}.amazonaws.com", "/prod")
    assert status == 403
    assert json.loads(body) == {"message": "Missing Authentication Token"}
    assert headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert headers["x-sandbox-hop"] == "stage"


def test_unmapped_base_path_is_forbidden(applied):
    box, _, _ = applied
    status, headers, body = send(box, DOMAIN, "/nowhere/anything")
    assert status == 403
    assert json.loads(body) == {"message": "Forbidden"}
    assert headers["x-amzn-errortype"] == "ForbiddenException"
    assert headers["x-sandbox-hop"] == "mapping"
    assert headers["x-amzn-requestid"]


def test_test_invoke_method_answers_through_current_resources(applied):
    box, gw, api_id = applied
    stage = gw.get_stage(restApiId=api_id, stageName="prod")
    # GET on the ANY method, as verify's probe sends it
    result = gw.test_invoke_method(restApiId=api_id, resourceId=proxy_resource(gw, api_id), httpMethod="GET",
                                   pathWithQueryString="/probe?q=1", stageVariables=stage["variables"])
    assert result["status"] == 200, result["log"]
    assert json.loads(result["body"])["container_port"] == 8080
    assert json.loads(result["body"])["path"] == "/probe"
    assert "q" in json.dumps(json.loads(result["body"])["query"])
    assert "Method completed with status: 200" in result["log"]
    assert isinstance(result["latency"], int)
    assert result["multiValueHeaders"]["x-sandbox-hop"] == ["service"]


def test_test_invoke_method_uses_the_stage_variables_given(applied):
    _, gw, api_id = applied
    result = gw.test_invoke_method(restApiId=api_id, resourceId=proxy_resource(gw, api_id), httpMethod="ANY",
                                   pathWithQueryString="/probe", stageVariables={"vpcLinkId": "nosuchlink"})
    assert result["status"] == 500
    assert json.loads(result["body"]) == {"message": "Internal server error"}
    assert "Invalid VPC link nosuchlink" in result["log"]


def test_integration_change_not_redeployed_still_serves_the_old_deployment(applied):
    box, gw, api_id = applied
    resource = proxy_resource(gw, api_id)
    current = gw.get_integration(restApiId=api_id, resourceId=resource, httpMethod="ANY")
    gw.update_integration(restApiId=api_id, resourceId=resource, httpMethod="ANY", patchOperations=[
        {"op": "replace", "path": "/uri", "value": current["uri"].replace("/{proxy}", "/v2/{proxy}")}])
    try:
        status, headers, body = send(box, DOMAIN, "/orders/old")
        assert status == 200, body
        assert json.loads(body)["path"] == "/old"  # the deployment's uri, not the changed one
        # TestInvokeMethod runs the current (not deployed) resources, so it already sees the change.
        stage = gw.get_stage(restApiId=api_id, stageName="prod")
        result = gw.test_invoke_method(restApiId=api_id, resourceId=resource, httpMethod="ANY",
                                       pathWithQueryString="/old", stageVariables=stage["variables"])
        assert json.loads(result["body"])["path"] == "/v2/old"
    finally:
        gw.update_integration(restApiId=api_id, resourceId=resource, httpMethod="ANY", patchOperations=[
            {"op": "replace", "path": "/uri", "value": current["uri"]}])


def test_failed_vpc_link_is_an_internal_server_error(applied):
    from vpclink_runbooks.sandbox import faults

    box, gw, _ = applied
    link = next(v for v in gw.get_vpc_links()["items"] if v["name"] == f"{BASE}-link")
    faults.set_vpc_link_status(box.account_id, box.region, link["id"], "FAILED", "NLB is not available")
    try:
        status, headers, body = send(box, DOMAIN, "/orders/x")
        assert (status, headers["x-sandbox-hop"]) == (500, "vpc_link")
        assert json.loads(body) == {"message": "Internal server error"}
        assert headers["x-amzn-errortype"] == "InternalServerErrorException"
    finally:
        faults.set_vpc_link_status(box.account_id, box.region, link["id"], "AVAILABLE")


def test_announce_writes_the_front(sandbox, tmp_path):
    from vpclink_runbooks import sandbox_link

    path = sandbox_link.announce(sandbox, tmp_path / "sandbox.json")
    assert json.loads(path.read_text())["front"] == sandbox.front


def test_no_listener_on_the_integration_port_is_a_network_error(applied):
    box, _, _ = applied
    elbv2 = box.session().client("elbv2")
    lb = elbv2.describe_load_balancers(Names=[f"{BASE}-nlb"])["LoadBalancers"][0]
    listener = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"][0]
    elbv2.modify_listener(ListenerArn=listener["ListenerArn"], Port=listener["Port"] + 1)
    try:
        status, headers, body = send(box, DOMAIN, "/orders/x")
        assert (status, headers["x-sandbox-hop"]) == (500, "listener")
        assert json.loads(body) == {"message": "Network error communicating with endpoint"}
    finally:
        elbv2.modify_listener(ListenerArn=listener["ListenerArn"], Port=listener["Port"])
    assert send(box, DOMAIN, "/orders/x")[0] == 200


def test_security_group_drop_times_out_like_dropped_packets(applied, monkeypatch):
    from vpclink_runbooks.sandbox import dataplane

    box, _, _ = applied
    monkeypatch.setattr(dataplane.SETTINGS, "drop_wait", 0.3)
    ec2 = box.session().client("ec2")
    rules = [r for r in ec2.describe_security_group_rules(
        Filters=[{"Name": "tag:runbook:environment", "Values": ["local"]}])["SecurityGroupRules"]
        if not r["IsEgress"]]
    assert rules
    for rule in rules:
        ec2.revoke_security_group_ingress(GroupId=rule["GroupId"], SecurityGroupRuleIds=[rule["SecurityGroupRuleId"]])
    try:
        status, headers, body = send(box, DOMAIN, "/orders/x")
        assert (status, headers["x-sandbox-hop"]) == (504, "security_group")
        assert json.loads(body) == {"message": "Endpoint request timed out"}
    finally:
        for rule in rules:
            source = ({"UserIdGroupPairs": [{"GroupId": rule["ReferencedGroupInfo"]["GroupId"]}]}
                      if rule.get("ReferencedGroupInfo") else {"IpRanges": [{"CidrIp": rule["CidrIpv4"]}]})
            ec2.authorize_security_group_ingress(GroupId=rule["GroupId"], IpPermissions=[{
                "IpProtocol": rule["IpProtocol"], "FromPort": rule["FromPort"], "ToPort": rule["ToPort"],
                **source}])


def test_v2_link_to_an_alb_with_dynamic_ports_reaches_the_service(applied, tmp_path):
    from .conftest import write_params

    box, _, _ = applied
    params = write_params(tmp_path, environment="albenv", service__name="shop", service__host_port=None,
                          service__health_check_path="/health", service__desired_count=2,
                          nlb={"type": "application", "subnets": None, "listener_port": 8000},
                          vpc_link={"version": 2}, api__base_path="shop")
    result = run("apply", str(params))
    assert result.exit_code == 0, json.loads((result.run_dir / "run.json").read_text()).get("error")
    status, headers, body = send(box, DOMAIN, "/shop/cart/1")
    assert (status, headers["x-sandbox-hop"]) == (200, "service"), body
    assert json.loads(body)["container_port"] == 8080
    assert json.loads(body)["path"] == "/cart/1"


def test_none_mapping_serves_every_path_of_its_domain(applied):
    box, gw, api_id = applied
    gw.create_domain_name(domainName="any.example.com", regionalCertificateArn=gw.get_domain_name(
        domainName=DOMAIN).get("regionalCertificateArn", "arn:aws:acm:eu-west-2:123456789012:certificate/x"),
        endpointConfiguration={"types": ["REGIONAL"]})
    gw.create_base_path_mapping(domainName="any.example.com", restApiId=api_id, stage="prod")
    status, headers, body = send(box, "any.example.com", "/orders/x")
    assert (status, headers["x-sandbox-hop"]) == (200, "service"), body
    assert json.loads(body)["path"] == "/orders/x"  # no base path to strip


def test_resource_match_prefers_exact_paths_then_parameters_then_greedy():
    from vpclink_runbooks.sandbox.dataplane import match_resource, pick_method

    def res(rid, path, *verbs):
        return {"id": rid, "path": path, "methods": {v: {"v": v} for v in verbs}}

    resources = {r["id"]: r for r in [res("root", "/"), res("proxy", "/{proxy+}", "ANY"),
                                      res("orders", "/orders", "GET"), res("one", "/orders/{id}", "GET"),
                                      res("items", "/orders/{id}/items/{proxy+}", "ANY")]}
    assert match_resource(resources, "/orders")[0]["id"] == "orders"
    assert match_resource(resources, "/orders/7") == (resources["one"], {"id": "7"})
    assert match_resource(resources, "/orders/7/items/a/b") == (resources["items"], {"id": "7", "proxy": "a/b"})
    assert match_resource(resources, "/other/path") == (resources["proxy"], {"proxy": "other/path"})
    assert match_resource(resources, "/")[0]["id"] == "root"
    assert pick_method(resources["proxy"], "DELETE") == {"v": "ANY"}
    assert pick_method(resources["orders"], "POST") is None


def test_invoke_url_of_an_unknown_stage_is_forbidden(applied):
    box, _, api_id = applied
    status, headers, body = send(box, f"{api_id}.execute-api.{box.region}.amazonaws.com", "/nostage/x")
    assert (status, json.loads(body), headers["x-sandbox-hop"]) == (403, {"message": "Forbidden"}, "stage")


def test_test_invoke_method_of_an_unknown_resource_is_not_found(applied):
    _, gw, api_id = applied
    with pytest.raises(gw.exceptions.NotFoundException):
        gw.test_invoke_method(restApiId=api_id, resourceId="nosuch", httpMethod="GET", pathWithQueryString="/")
