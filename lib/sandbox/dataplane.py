"""The sandbox's data plane: resolves one HTTP request from the emulator's live state as API Gateway does
(domain -> base path mapping -> REST API + stage -> the stage's deployment -> resource/method -> integration),
then hands the integration to `dataplane_lb` (VPC link -> load balancer -> target -> task's stand-in).

Failures answer with API Gateway's default gateway responses (status, `x-amzn-ErrorType`, body), see `GATEWAY`.
Every answer carries `x-amzn-RequestId` and the sandbox-only `x-sandbox-hop` naming the hop that decided it
("service" when the stand-in answered). Resolution runs under `base.LOCK` (moto's state is lazy and shared);
waiting and forwarding run outside it so the control plane never blocks on the data plane.

Where the sandbox cannot be AWS: traffic dropped by a security group is a real wait, capped at
min(the integration's timeoutInMillis, `SETTINGS.drop_wait` s, default 2 s) instead of AWS's full timeout.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .base import LOCK, _apigw

# Default gateway responses. Types and statuses from "Gateway response types for API Gateway"
# (docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html); the VPC-link
# causes of a 500 from AWS's knowledge center (repost.aws/knowledge-center/api-gateway-500-error-vpc). Bodies and
# x-amzn-ErrorType values are what API Gateway sends (as captured in public responses), spacing included.
GATEWAY: dict[str, tuple[int, str, str]] = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "MissingAuthenticationTokenException",
                                     '{"message":"Missing Authentication Token"}'),
    "FORBIDDEN": (403, "ForbiddenException", '{"message":"Forbidden"}'),
    "API_CONFIGURATION_ERROR": (500, "InternalServerErrorException", '{"message": "Internal server error"}'),
    "INTEGRATION_FAILURE": (500, "InternalServerErrorException",
                            '{"message": "Network error communicating with endpoint"}'),
    "INTEGRATION_TIMEOUT": (504, "InternalServerErrorException", '{"message": "Endpoint request timed out"}'),
}

# What the execution log says for each (API Gateway's CloudWatch execution log / TestInvokeMethod log wording).
_LOG = {
    "API_CONFIGURATION_ERROR": "Execution failed due to configuration error: ",
    "INTEGRATION_FAILURE": "Execution failed due to configuration error: Network error communicating with endpoint: ",
    "INTEGRATION_TIMEOUT": "Execution failed due to a timeout error: ",
}

_INVOKE_HOST = re.compile(r"([a-z0-9]{10})\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")
_VAR = re.compile(r"\$\{stageVariables\.([A-Za-z0-9_]+)\}")


@dataclass
class Settings:
    drop_wait: float = 2.0  # s: the longest a dropped connection waits before the integration times out


SETTINGS = Settings()


class Fail(Exception):
    """API Gateway (or the network behind it) answers instead of the service."""

    def __init__(self, kind: str, hop: str, why: str):
        super().__init__(why)
        self.kind, self.hop, self.why = kind, hop, why


@dataclass
class Trace:
    """The execution log of one request, in API Gateway's wording."""

    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    lines: list[str] = field(default_factory=list)

    def log(self, text: str) -> None:
        self.lines.append(f"{time.strftime('%a %b %d %H:%M:%S UTC %Y', time.gmtime())} : {text}")

    def text(self) -> str:
        return f"Execution log for request {self.request_id}\n" + "\n".join(self.lines) + "\n"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    hop: str


def gateway_answer(kind: str, hop: str, trace: Trace) -> Answer:
    status, error_type, body = GATEWAY[kind]
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": error_type}
    return Answer(status, headers, body.encode(), hop)


def _finish(answer: Answer, trace: Trace) -> Answer:
    answer.headers["x-amzn-RequestId"] = trace.request_id
    answer.headers["x-sandbox-hop"] = answer.hop
    return answer


# ---- deployments: plain-data snapshots of an API's resources ------------------------------------------------

def snapshot(api: Any) -> dict[str, dict]:
    """The API's resources, methods and integrations as plain data (what a deployment freezes)."""
    out: dict[str, dict] = {}
    for res in api.resources.values():
        methods = {}
        for verb, m in res.resource_methods.items():
            integ = m.method_integration
            methods[verb] = {
                "authorizationType": m.authorization_type, "apiKeyRequired": bool(m.api_key_required),
                "integration": None if integ is None else {
                    "type": integ.integration_type, "uri": integ.uri, "httpMethod": integ.http_method,
                    "connectionType": integ.connection_type,
                    "connectionId": getattr(integ, "connection_id", None),
                    "integrationTarget": getattr(integ, "integration_target", None),
                    "timeoutInMillis": integ.timeout_in_millis,
                    "requestParameters": dict(integ.request_parameters or {}),
                },
            }
        out[res.id] = {"id": res.id, "path": res.get_path(), "methods": methods}
    return out


def _deployed(api: Any, stage: Any) -> dict[str, dict]:
    deployment = api.deployments.get(stage.deployment_id)
    snap = getattr(deployment, "_sbx_snapshot", None)
    if snap is None:  # a deployment made before the sandbox's patches were installed
        raise Fail("MISSING_AUTHENTICATION_TOKEN", "stage", f"stage {stage.name} has no deployment")
    return snap


# ---- resource and method match -------------------------------------------------------------------------------

def _match_one(template: str, segments: list[str]) -> tuple[tuple, dict[str, str]] | None:
    parts = [p for p in template.split("/") if p]
    params: dict[str, str] = {}
    literal = 0
    for i, part in enumerate(parts):
        if part.startswith("{") and part.endswith("+}"):
            if i != len(parts) - 1 or len(segments) <= i:
                return None
            params[part[1:-2]] = "/".join(segments[i:])
            return (0, literal, len(parts)), params
        if i >= len(segments):
            return None
        if part.startswith("{") and part.endswith("}"):
            params[part[1:-1]] = segments[i]
        elif part != segments[i]:
            return None
        else:
            literal += 1
    if len(parts) != len(segments):
        return None
    return (1, literal, len(parts)), params


def match_resource(resources: dict[str, dict], path: str) -> tuple[dict, dict[str, str]] | None:
    """The most specific resource for `path`: whole-path matches beat a greedy {proxy+}; then more literal
    segments win (so an exact path beats /{id} and /{proxy+})."""
    segments = [s for s in path.split("/") if s]
    best = None
    for res in resources.values():
        hit = _match_one(res["path"], segments)
        if hit is not None and (best is None or hit[0] > best[0]):
            best = (hit[0], res, hit[1])
    return None if best is None else (best[1], best[2])


def pick_method(resource: dict, verb: str) -> dict | None:
    return resource["methods"].get(verb.upper()) or resource["methods"].get("ANY")


# ---- domain -> mapping -> API + stage -----------------------------------------------------------------------

def _find_domain(account_id: str, region: str, host: str) -> tuple[Any, str] | None:
    from moto.apigateway.models import apigateway_backends

    backend = _apigw(account_id, region)
    if host in backend.domain_names:
        return backend, region
    for other, backend in list(apigateway_backends[account_id].items()):
        if host in backend.domain_names:
            return backend, other
    return None


def _route_domain(account_id: str, region: str, host: str, path: str, trace: Trace) -> tuple[Any, Any, str, str]:
    found = _find_domain(account_id, region, host)
    if found is None:
        raise Fail("FORBIDDEN", "mapping", f"{host} is not a custom domain name of this account")
    backend, region = found
    mappings = backend.base_path_mappings.get(host, {})
    segments = [s for s in path.split("/") if s]
    chosen, rest = None, segments
    for base, mapping in mappings.items():
        parts = [] if base == "(none)" else base.split("/")
        if segments[: len(parts)] == parts and (chosen is None or len(parts) > chosen[0]):
            chosen, rest = (len(parts), mapping), segments[len(parts):]
    if chosen is None:
        raise Fail("FORBIDDEN", "mapping", f"no base path mapping of {host} matches {path}")
    mapping = chosen[1]
    api = backend.apis.get(mapping.rest_api_id)
    if api is None:
        raise Fail("FORBIDDEN", "mapping", f"the mapping names REST API {mapping.rest_api_id}, which does not exist")
    stage_name = mapping.stage
    if not stage_name:  # a mapping without a stage takes the stage from the path
        if not rest:
            raise Fail("FORBIDDEN", "mapping", "the mapping has no stage and the path names none")
        stage_name, rest = rest[0], rest[1:]
    stage = api.stages.get(stage_name)
    if stage is None:
        raise Fail("FORBIDDEN", "mapping", f"the mapping names stage {stage_name}, which API {api.id} lacks")
    trace.log(f"Custom domain {host}: base path {mapping.base_path} -> API {api.id} stage {stage_name}")
    return api, stage, "/" + "/".join(rest), region


def _route_invoke(account_id: str, api_id: str, region: str, path: str, trace: Trace) -> tuple[Any, Any, str]:
    backend = _apigw(account_id, region)
    api = backend.apis.get(api_id)
    if api is None or getattr(api, "disableExecuteApiEndpoint", False):
        raise Fail("FORBIDDEN", "stage", f"no REST API {api_id} serves its invoke URL in {region}")
    segments = [s for s in path.split("/") if s]
    stage = api.stages.get(segments[0]) if segments else None
    if stage is None:
        raise Fail("FORBIDDEN", "stage", f"API {api_id} has no stage {segments[0] if segments else '(none)'}")
    return api, stage, "/" + "/".join(segments[1:])


# ---- the integration -----------------------------------------------------------------------------------------

def substitute(text: str | None, variables: dict[str, str]) -> tuple[str | None, list[str]]:
    """Replace ${stageVariables.x}; returns the text and the names that had no value."""
    if text is None:
        return None, []
    missing: list[str] = []

    def one(m: re.Match) -> str:
        if m.group(1) not in variables:
            missing.append(m.group(1))
            return m.group(0)
        return str(variables[m.group(1)])

    return _VAR.sub(one, text), missing


def integration_path(uri_path: str, integ: dict, params: dict[str, str]) -> str:
    """Fill the uri's {name} placeholders from requestParameters (integration.request.path.name =
    method.request.path.x), falling back to the method's path parameter of the same name."""
    mapped = integ.get("requestParameters") or {}

    def one(m: re.Match) -> str:
        name = m.group(1)
        source = mapped.get(f"integration.request.path.{name}", "")
        key = source.rsplit(".", 1)[-1] if source.startswith("method.request.path.") else name
        return params.get(key, "")

    return re.sub(r"\{([A-Za-z0-9_]+)\+?\}", one, uri_path)


def resolve(account_id: str, region: str, method: dict, params: dict[str, str], variables: dict[str, str],
            trace: Trace) -> Any:
    """From a matched method to where the request goes (a `dataplane_lb.Forward`); raises Fail."""
    from . import dataplane_lb

    integ = method.get("integration")
    if integ is None:
        raise Fail("API_CONFIGURATION_ERROR", "integration", "No integration defined for method")
    if integ.get("type") not in ("HTTP_PROXY", "HTTP") or integ.get("connectionType") != "VPC_LINK":
        raise Fail("API_CONFIGURATION_ERROR", "integration",
                   f"the sandbox serves VPC_LINK HTTP integrations only (this is {integ.get('type')} "
                   f"{integ.get('connectionType') or 'INTERNET'})")
    connection_id, missing = substitute(integ.get("connectionId"), variables)
    if missing or not connection_id:
        raise Fail("API_CONFIGURATION_ERROR", "stage",
                   f"Invalid VPC link: stage variable {', '.join(missing) or 'connectionId'} has no value")
    uri, missing = substitute(integ.get("uri"), variables)
    if missing or not uri:
        raise Fail("API_CONFIGURATION_ERROR", "integration", f"Invalid endpoint address: {integ.get('uri')}")
    return dataplane_lb.forward_for(account_id, region, integ, connection_id, uri, params,
                                    from_variable=bool(_VAR.search(integ.get("connectionId") or "")), trace=trace)


# ---- the front's entry point --------------------------------------------------------------------------------

def handle(account_id: str, region: str, verb: str, host: str, path: str, query: str,
           headers: dict[str, str], body: bytes) -> Answer:
    """Serve one request that reached the front, as API Gateway serves it."""
    from . import dataplane_lb

    trace = Trace()
    host = (host or "").split(":")[0].lower().rstrip(".")
    try:
        with LOCK:
            invoke = _INVOKE_HOST.fullmatch(host)
            if invoke:
                api, stage, rest = _route_invoke(account_id, invoke.group(1), invoke.group(2), path, trace)
                region = invoke.group(2)
            else:
                api, stage, rest, region = _route_domain(account_id, region, host, path, trace)
            hit = match_resource(_deployed(api, stage), rest)
            method = pick_method(hit[0], verb) if hit else None
            if method is None:
                raise Fail("MISSING_AUTHENTICATION_TOKEN", "stage",
                           f"stage {stage.name}'s deployment has no method {verb} for {rest}")
            if method.get("authorizationType") == "AWS_IAM" and "authorization" not in {k.lower() for k in headers}:
                raise Fail("MISSING_AUTHENTICATION_TOKEN", "stage", "the method needs a SigV4-signed request")
            trace.log(f"HTTP Method: {verb}, Resource Path: {hit[0]['path']}")
            fwd = resolve(account_id, region, method, hit[1], dict(stage.variables or {}), trace)
        answer = dataplane_lb.send(fwd, verb, query, headers, body, trace)
    except Fail as f:
        trace.log(_LOG.get(f.kind, "") + f.why)
        answer = gateway_answer(f.kind, f.hop, trace)
    return _finish(answer, trace)


def test_invoke(account_id: str, region: str, api: Any, resource_id: str, verb: str, path_with_query: str,
                headers: dict[str, str], body: bytes, variables: dict[str, str]) -> dict:
    """TestInvokeMethod: the API's current (not deployed) resources with the caller's stage variables.
    Returns AWS's shape {status, body, headers, multiValueHeaders, log, latency}; None when the resource or
    method does not exist (the caller answers NotFoundException)."""
    from . import dataplane_lb

    started = time.monotonic()
    trace = Trace()
    trace.log(f"Starting execution for request: {trace.request_id}")
    path, _, query = (path_with_query or "/").partition("?")
    with LOCK:
        resources = snapshot(api)
    resource = resources.get(resource_id)
    if resource is None:
        return {"error": "Invalid Resource identifier specified"}
    method = pick_method(resource, verb)
    if method is None:
        return {"error": "Invalid Method identifier specified"}
    trace.log(f"HTTP Method: {verb}, Resource Path: {path}")
    hit = _match_one(resource["path"], [s for s in path.split("/") if s])
    params = hit[1] if hit else {}
    if not hit and resource["path"].endswith("+}"):  # {proxy+} probed with "/": the greedy parameter is empty
        params = {resource["path"].rsplit("{", 1)[1].rstrip("+}"): path.strip("/")}
    trace.log(f"Method request path: {params}")
    trace.log(f"Method request query string: {{{query}}}")
    try:
        with LOCK:
            fwd = resolve(account_id, region, method, params, variables, trace)
        # An ANY method tested as ANY still sends one concrete method to the endpoint.
        answer = dataplane_lb.send(fwd, "GET" if verb.upper() == "ANY" else verb, query, headers, body, trace)
    except Fail as f:
        trace.log(_LOG.get(f.kind, "") + f.why)
        answer = gateway_answer(f.kind, f.hop, trace)
    trace.log(f"Method completed with status: {answer.status}")
    answer.headers["x-sandbox-hop"] = answer.hop
    return {
        "status": answer.status,
        "body": answer.body.decode("utf-8", "replace"),
        "headers": dict(answer.headers),
        "multiValueHeaders": {k: [v] for k, v in answer.headers.items()},
        "log": trace.text(),
        "latency": round((time.monotonic() - started) * 1000),
    }

