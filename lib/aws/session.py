"""boto3 sessions, clients and the call recorder: AWS is reached only through boto3's standard config."""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from vpclink_runbooks.aws import endpoint, pacing
from vpclink_runbooks.aws.run_inventory import FILE as INVENTORY_FILE
from vpclink_runbooks.aws.run_inventory import RunInventory
from vpclink_runbooks.errors import GuardRefused, RunbookError
from vpclink_runbooks.params import Params

# Standard retry mode retries throttling and 5xx with exponential backoff and jitter; API
# Gateway's control plane throttles hard (a few requests per second), so allow a deep retry.
RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 10},  # botocore rewrites this dict: see RETRIES
    user_agent_extra="vpclink-runbooks/0.1",
    connect_timeout=10,
    read_timeout=60,
)
# API Gateway's management quotas are per account, fixed and small ("Amazon API Gateway quotas": DeleteRestApi and
# DeleteVpcLink V2 1 call per 30 s, CreateVpcLink V2 1 per 15 s, CreateDeployment 1 per 5 s, all calls together 10
# per s), and every runbook process and other tool of the account spends the same budget, so its clients retry
# throttling far longer than the other services'. Standard mode waits U(0,1) * min(2**(i-1), 20) s before retry i;
# max_attempts counts retries (41 attempts): 40 retries wait 0.5 * (1+2+4+8+16) + 35 * 10 = 365.5 s on average
# (std ~34 s, so < 2 min only beyond 7 std): room for the slowest quota with 4 DeleteRestApi callers side by
# side (the last is served ~90-120 s after the first) and several more (tests/test_profile.py simulates 4 and 8
# with botocore's own backoff: all served; with 10 retries, 4 never are). Other errors (5xx) keep the 10 retries
# of every service (_stop_non_throttling_retries). Limit: the standard retry quota lets one client retry ~100
# throttled calls at once (500 tokens, 5 a retry) before it stops retrying.
APIGATEWAY_RETRY_CONFIG = RETRY_CONFIG.merge(Config(retries={"mode": "standard", "max_attempts": 40}))
APIGATEWAY_SERVICES = ("apigateway", "apigatewayv2")
RETRIES = 10  # RETRY_CONFIG's max_attempts (retries); botocore renames that key once a client uses it
# Error codes botocore's standard mode treats as throttling (a copy of botocore.retries.standard's list; with
# HTTP 429 they are what counts as a throttled answer).
THROTTLING_CODES = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
}
READ_ONLY_PREFIXES = ("Describe", "Get", "List", "Test", "Lookup")
READ_ONLY_OPERATIONS = {"AssumeRole", "GetCallerIdentity"}
CALL_LOG_ENV = "RUNBOOK_CALL_LOG"
# The run folder of the runner's current run (the notebooks write plan.jsonl and checks.json there).
RUN_DIR_ENV = "RUNBOOK_RUN_DIR"
# Keys that name the resource a call acts on, most specific first.
_RESOURCE_KEYS = (
    "LoadBalancerArn", "ListenerArn", "TargetGroupArn", "GroupId", "SecurityGroupRuleIds",
    "restApiId", "vpcLinkId", "domainName", "service", "serviceName", "family", "taskDefinition",
    "Name", "name", "Names", "ResourceArns", "resourceArn", "cluster", "SecretId", "RoleName", "repositoryName",
)


def _is_throttling(response: Any) -> bool:
    http, parsed = response
    code = (parsed or {}).get("Error", {}).get("Code")
    return getattr(http, "status_code", 200) == 429 or code in THROTTLING_CODES


def _stop_non_throttling_retries(attempts: int, response: Any = None, **_: Any) -> bool | None:
    """On API Gateway clients, before botocore's retry handler: an answer that is not throttling (5xx, a dropped
    connection) ends the call after RETRY_CONFIG's retries, as for every other service; False stops the retry."""
    if attempts <= RETRIES or (response is not None and _is_throttling(response)):
        return None
    if response is not None and response[1] is not None:  # boto3's message then says "reached max retries"
        metadata = response[1].setdefault("ResponseMetadata", {})
        metadata.update(MaxAttemptsReached=True, RetryAttempts=attempts - 1)
    return False


def is_mutating(operation: str) -> bool:
    return operation not in READ_ONLY_OPERATIONS and not operation.startswith(READ_ONLY_PREFIXES)


class MutationRefused(RunbookError):
    """A read-only session was asked for a mutating call: a bug; the call was not sent."""


# A session that refuses mutations answers this event with why (waits read it: a read-only client never polls).
READ_ONLY_EVENT = "runbook-read-only"


def refuse_mutations(session: boto3.Session, why: str, error: type[Exception] = MutationRefused) -> None:
    """Make `session` read-only: every client made from it afterwards raises `error` on a mutating call (see
    is_mutating) before the request is signed and sent, so AWS never sees it. `why` opens the message, e.g.
    "export is read-only". Register before the session's first client: botocore copies a session's handlers
    into each client it creates."""

    def refuse(model: Any, **_: Any) -> None:
        if is_mutating(model.name):
            raise error(f"{why} but tried {model.service_model.service_name}.{model.name}; the call was not sent. "
                        "Please report this as a bug.")

    session.events.register("before-call", refuse, unique_id="runbook-refuse-mutations")
    session.events.register(READ_ONLY_EVENT, lambda **_: why, unique_id="runbook-read-only-why")


def read_only_reason(target: Any) -> str | None:
    """Why a session, a client made from one, or an Aws refuses mutations (see refuse_mutations); None if not."""
    session = getattr(target, "session", target)
    events = session.events if hasattr(session, "events") else session.meta.events
    return next((why for _, why in events.emit(READ_ONLY_EVENT) if why), None)


def _resource_of(params: dict, parsed: dict) -> str:
    parts = []
    for key in _RESOURCE_KEYS:
        if key in params and params[key]:
            value = params[key]
            parts.append(f"{key}={','.join(value) if isinstance(value, list) else value}")
            break
    for key in ("basePath", "stageName", "resourceId", "httpMethod", "Port"):
        if params.get(key):
            parts.append(f"{key}={params[key]}")
    created = _created_id(parsed)
    if created and not any(created in p for p in parts):
        parts.append(f"id={created}")
    return " ".join(parts)


def _created_id(parsed: dict) -> str | None:
    for path in (("LoadBalancers", 0, "LoadBalancerArn"), ("TargetGroups", 0, "TargetGroupArn"),
                 ("Listeners", 0, "ListenerArn"), ("taskDefinition", "taskDefinitionArn"),
                 ("service", "serviceArn"), ("SecurityGroupRules", 0, "SecurityGroupRuleId"), ("id",)):
        node: Any = parsed
        for step in path:
            try:
                node = node[step]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if isinstance(node, str):
            return node
    return None


# A context variable, not a thread-local: a read sent by a worker of parallel.gather runs in a copy of its
# caller's context, so a wait that reads side by side still marks its polls.
_POLLING: contextvars.ContextVar[str | None] = contextvars.ContextVar("runbook_polling", default=None)


@contextlib.contextmanager
def polling(waiter_name: str) -> Iterator[None]:
    """While a waiter polls in this thread (and the reads it runs side by side, see parallel.gather), the recorder
    marks its calls with the waiter's name ("wait" in calls.jsonl), so a command's reads can be counted apart from
    its waits' polls."""
    token = _POLLING.set(waiter_name)
    try:
        yield
    finally:
        _POLLING.reset(token)


def polling_now() -> str | None:
    """The name of the waiter polling in this context (see polling), or None."""
    return _POLLING.get()


# The headers AWS names the request in (S3: x-amz-request-id; the rest: x-amzn-RequestId); lower case, as botocore
# keeps them in ResponseMetadata.HTTPHeaders.
REQUEST_ID_HEADERS = ("x-amzn-requestid", "x-amz-request-id", "x-amzn-request-id")


def request_id_of(parsed: dict | None, http_response: Any = None) -> str | None:
    """AWS's request id of an answer (success or error): ResponseMetadata.RequestId, else the header."""
    metadata = (parsed or {}).get("ResponseMetadata", {})
    if metadata.get("RequestId"):
        return metadata["RequestId"]
    headers = {k.lower(): v for k, v in (metadata.get("HTTPHeaders") or {}).items()}
    if http_response is not None:
        headers.update({k.lower(): v for k, v in getattr(http_response, "headers", {}).items()})
    return next((headers[h] for h in REQUEST_ID_HEADERS if headers.get(h)), None)


@dataclass
class CallRecorder:
    """Records every AWS call made through a session: service, operation, mutating, resource, result."""

    log_path: Path | None = None
    step: str | None = None  # the notebook that makes the calls ("step" in calls.jsonl)
    calls: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, session: boto3.Session) -> None:
        events = session.events
        events.register("before-parameter-build", self._remember_params)
        events.register("request-created", self._started)
        events.register("after-call", self._after_call)
        events.register("after-call-error", self._after_error)
        events.register("needs-retry", self._count_throttled)

    @staticmethod
    def _count_throttled(response: Any = None, request_dict: dict | None = None, **_: Any) -> None:
        # Emitted after every attempt (the last one too), before botocore decides to retry: counts the throttled
        # answers of one call in its request context, which after-call receives as `context`. Returns None so
        # botocore's own retry handler decides.
        if not response or request_dict is None:
            return
        if _is_throttling(response):
            context = request_dict.get("context", {})
            context["runbook_throttled"] = context.get("runbook_throttled", 0) + 1

    @staticmethod
    def _remember_params(params: dict, context: dict, **_: Any) -> None:
        context["runbook_params"] = dict(params)

    @staticmethod
    def _started(request: Any = None, **_: Any) -> None:
        # The first attempt's request is made (a call the run inventory answers makes none): when the call went
        # out, so that calls sent side by side (parallel.gather) show as overlapping in calls.jsonl.
        context = getattr(request, "context", None)
        if isinstance(context, dict):
            context.setdefault("runbook_started", time.time())

    def _record(self, model: Any, context: dict, result: str, parsed: dict, request_id: str | None = None) -> None:
        operation = model.name
        entry = {
            "time": time.time(),
            # when it was sent (before its first attempt; pacing's wait and retries included); None if never
            "started": context.get("runbook_started"),
            "service": model.service_model.service_name,
            "operation": operation,
            "mutating": is_mutating(operation),
            "resource": _resource_of(context.get("runbook_params", {}), parsed or {}),
            "result": result,
            # attempts after the first, and how many answers were throttling (a call can end throttled)
            "retries": int((parsed or {}).get("ResponseMetadata", {}).get("RetryAttempts", 0)),
            "throttled": int(context.get("runbook_throttled", 0)),
            # AWS's id of the request, to find the call in CloudTrail (None only when no answer came back)
            "request_id": request_id or request_id_of(parsed),
        }
        if self.step:
            entry["step"] = self.step
        waiter = polling_now()
        if waiter:
            entry["wait"] = waiter  # a poll of that waiter, not a read of the step's own
        with self._lock:
            self.calls.append(entry)
            if self.log_path:
                with open(self.log_path, "a") as fh:
                    fh.write(json.dumps(entry) + "\n")

    def _after_call(self, http_response: Any, parsed: dict, model: Any, context: dict, **_: Any) -> None:
        if context.get("runbook_from_inventory"):
            return  # answered from the run inventory: nothing was sent
        status = getattr(http_response, "status_code", 200)
        error = (parsed or {}).get("Error", {}).get("Code") if status >= 300 else None
        self._record(model, context, error or "ok", parsed, request_id_of(parsed, http_response))

    def _after_error(self, exception: Exception, model: Any = None, context: dict | None = None, **_: Any) -> None:
        if model is not None:
            self._record(model, context or {}, f"error: {type(exception).__name__}", {})

    @property
    def mutating(self) -> list[dict]:
        return [c for c in self.calls if c["mutating"] and c["result"] == "ok"]


class Aws:
    """The clients one run uses, all from one session with the runbook's retry config and recorder."""

    def __init__(self, session: boto3.Session, recorder: CallRecorder | None = None, step: str | None = None):
        self.session = session
        # The step goes into every request's User-Agent, so CloudTrail shows which notebook made each call.
        self.config = RETRY_CONFIG.merge(Config(user_agent_extra=f"{RETRY_CONFIG.user_agent_extra} step/{step}")) \
            if step else RETRY_CONFIG
        self.recorder = recorder or CallRecorder()
        self.recorder.attach(session)
        self.inventory: RunInventory | None = None
        self.account: str | None = None  # the params' account (connect): API Gateway's quotas are per account
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, name: str) -> Any:
        with self._lock:
            if name not in self._clients:
                config = self.config.merge(Config(retries=APIGATEWAY_RETRY_CONFIG.retries)) \
                    if name in APIGATEWAY_SERVICES else self.config
                client = self.session.client(name, config=config)
                if name in APIGATEWAY_SERVICES:
                    service_id = client.meta.service_model.service_id.hyphenize()
                    client.meta.events.register_first(f"needs-retry.{service_id}", _stop_non_throttling_retries)
                    pacing.install(client, self.account)  # the account's quotas, in turn with other processes
                self._clients[name] = client
            return self._clients[name]

    def __getattr__(self, name: str) -> Any:
        # aws.ec2, aws.elbv2, aws.ecs, aws.apigateway, aws.sts ...
        if name.startswith("_"):
            raise AttributeError(name)
        return self.client(name)

    @property
    def region(self) -> str:
        return self.session.region_name

    @property
    def read_only(self) -> str | None:
        """Why this session refuses mutating calls (plan mode, export); None when it may change AWS."""
        return read_only_reason(self.session)

    @property
    def endpoint(self) -> str | None:
        return os.environ.get("AWS_ENDPOINT_URL")


_LOADER_LOCK = threading.Lock()
_LOADER: Any = None


def new_session(**kwargs: Any) -> boto3.Session:
    """boto3.Session(**kwargs) sharing this process's botocore data loader, so service models, endpoint rules and
    partitions are parsed once per process rather than once per session: ~0.3 s of CPU for every step after the
    first in a reused kernel, and for the runner's own sessions. The loader only caches files it read from disk;
    credentials, region and profile stay per session."""
    global _LOADER
    core = botocore.session.Session()
    with _LOADER_LOCK:
        if _LOADER is not None:
            core.register_component("data_loader", _LOADER)
        session = boto3.Session(botocore_session=core, **kwargs)
        if _LOADER is None:
            _LOADER = core.get_component("data_loader")
        # boto3 appends its own data directory to the loader's search path for every session it wraps
        _LOADER.search_paths[:] = list(dict.fromkeys(_LOADER.search_paths))
    return session


def make_session(params: Params) -> boto3.Session:
    """A session for the params: profile or ambient credentials, optionally a role, always params.region."""
    from botocore.exceptions import ClientError, ProfileNotFound

    from vpclink_runbooks.errors import CredentialsRefused

    try:
        session = new_session(profile_name=params.aws_profile, region_name=params.region)
    except ProfileNotFound as exc:
        raise CredentialsRefused(
            f"aws_profile: the AWS profile {params.aws_profile!r} is not configured on this machine ({exc}); add it "
            "with `aws configure --profile NAME` or set aws_profile in the params file; nothing was changed") from None
    if params.role_arn:
        sts = session.client("sts", config=RETRY_CONFIG)
        try:
            creds = sts.assume_role(RoleArn=params.role_arn,
                                    RoleSessionName=f"vpclink-runbooks-{params.environment}")
        except ClientError as exc:
            raise CredentialsRefused(
                f"role_arn: could not assume {params.role_arn} ({exc.response['Error'].get('Code')}: "
                f"{exc.response['Error'].get('Message')}); check that the role exists and trusts your identity, or "
                "fix role_arn in the params file; nothing was changed") from None
        c = creds["Credentials"]
        session = new_session(
            aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
            aws_session_token=c["SessionToken"], region_name=params.region,
        )
    return session


def connect(params: Params, step: str | None = None, read_only: str | None = None) -> Aws:
    """The run's clients for the params; with `read_only` (why, e.g. "plan mode is read-only") every mutating call
    is refused before it is sent (refuse_mutations) and every wait returns at once (waits.wait)."""
    log = os.environ.get(CALL_LOG_ENV)
    if params.sandbox:  # the endpoint is the local one a running `runbook sandbox` announced (never starts one)
        endpoint.use_running_sandbox()
    session = make_session(params)
    if read_only:
        refuse_mutations(session, read_only)
    aws = Aws(session, CallRecorder(Path(log) if log else None, step), step)
    aws.account = params.account_id
    run_dir = os.environ.get(RUN_DIR_ENV)
    if run_dir:  # a runner's run: its notebooks share what they read (run_inventory)
        aws.inventory = RunInventory(Path(run_dir, INVENTORY_FILE), polling_now, step)
        aws.inventory.attach(session)
    return aws


@contextlib.contextmanager
def fresh(aws: Aws) -> Iterator[None]:
    """Read what time alone changes from AWS, not from the run inventory (the final verify does)."""
    with aws.inventory.fresh() if aws.inventory else contextlib.nullcontext():
        yield


def check_region(aws: Aws, params: Params) -> None:
    """Refuse (exit 2) when the session resolved to another region than params.region (profile/role config)."""
    if aws.region != params.region:
        raise GuardRefused(
            f"region guard: the AWS session is in region {aws.region or '(none)'} but params say region "
            f"{params.region}; fix the profile's region or the params. Nothing was changed."
        )


def check_account(aws: Aws, params: Params) -> dict:
    """Refuse (exit 2) unless the session is in params.region and the caller is in params.account_id.

    Returns the caller identity.
    """
    check_region(aws, params)
    identity = aws.sts.get_caller_identity()
    if identity["Account"] != params.account_id:
        raise GuardRefused(
            f"account guard: the credentials are for account {identity['Account']} ({identity['Arn']}) but "
            f"params say account_id {params.account_id}; switch profile/role or fix account_id. Nothing was changed."
        )
    return {"account": identity["Account"], "caller_arn": identity["Arn"], "region": aws.region}
