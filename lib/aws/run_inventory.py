"""The run inventory: what one command's notebooks read from AWS, shared between them.

A command (plan, apply, verify, repair, destroy) runs several notebooks, each in its own kernel, and each
starts by finding the world it acts on. Without sharing, every notebook reads the VPC, the cluster's
instances, the load balancer and the API again. The runner's run folder holds ``inventory.jsonl``: every
read's answer (service, operation, parameters -> the parsed response or the error AWS gave), appended by
whichever notebook read it first. A later read with the same operation and parameters in the same run is
answered from there instead of being sent (and is not in ``calls.jsonl``: it cost nothing).

What keeps it true:
- A mutating call forgets (appends a ``forget`` line for) every answer it can have changed: for the calls
  apply makes, what aws/changes.py says (which also keeps what the call's own answer says a later read would
  answer); for any other, the answers of its service whose parameters or answer hold any value the call
  named or returned, the service's list reads (those that name no resource), and the reads of other services
  it affects (EFFECTS). Other notebooks of the run see the ``forget`` before their next read, so a read after
  a change goes to AWS.
- A wait's polls are sent (the waiter needs the live state) and their answers replace what is kept; only a poll
  another notebook's wait sent for the same read under SHARED_POLL_SECONDS ago, or is sending now (a `polling`
  line), answers one (two waits on one resource poll AWS once).
- The final verify asks for the state time changes without any call of ours (FRESH: target health, tasks,
  the service, VPC link status, instances) and reads from AWS what is older than FRESH_SECONDS.
- A read by one name that a kept complete list answers (a load balancer or target group by name, a base path
  mapping) is answered from that list, with AWS's own error when the name is not in it (changes.FROM_LIST).
- Reads sent side by side (aws/parallel.py): a read whose answer (or the list that answers it) is on its way
  for another thread of this session waits for that answer instead of being sent a second time.
- Errors kept are AWS's own 4xx answers (mostly an absent resource; an access denial is kept too, as IAM does
  not change within one command); 5xx, throttling and connection errors are never kept.

The file is an audit record of what the run saw, sealed with the rest of the run folder: each answer a read
brought has ``sent`` (the notebook that sent it) and, for a wait's poll, ``wait``; the other lines are what
mutations told or forgot. A notebook run on its own (papermill, no runner) has no run folder and reads
everything itself.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse

from vpclink_runbooks.aws import changes

FILE = "inventory.jsonl"
# Reads no runbook call changes: kept even across mutations.
STABLE = {"GetCallerIdentity", "DescribeVpcs", "DescribeSubnets", "DescribeRouteTables", "DescribeClusters",
          "GetDomainName"}
# A wait's poll is answered by another notebook's poll of the same read younger than this (lib/aws/waits.py polls
# once a second): 20_vpc_link waits for the NLB that 10_nlb's wait polls, and AWS is asked once. Half the period,
# so the answer a poll takes is at most half a second older than one it would have sent.
SHARED_POLL_SECONDS = 0.5
# Reads whose answers change with time alone (AWS's own convergence, other actors): the final verify reads them.
# (A load balancer, once active, and the cluster's container instances change only by someone's call: a call of
# this run forgets them, see changes.CHANGES; another actor's change in the minutes of one run is not looked for.)
FRESH = ("DescribeTargetHealth", "ListTasks", "DescribeTasks", "DescribeServices", "GetVpcLink", "GetVpcLinks",
         "DescribeInstances")
# The final verify takes answers of FRESH reads younger than this as current: a wait's last poll a few seconds
# before it (healthy targets, a stable service) is not read again; anything older is.
FRESH_SECONDS = 20.0
# A mutation of one service changes what reads of another answer: e.g. a service's tasks register as targets,
# a security group rule changes the targets' health, a load balancer deleted or changed fails the VPC link on
# it (creating one cannot). service -> (the operations that do it, by prefix; () for all, {service: reads}).
EFFECTS = {
    "ecs": ((), {"elbv2": ("DescribeTargetHealth",)}),
    "ec2": ((), {"elbv2": ("DescribeTargetHealth",)}),
    "elbv2": (("Delete", "Modify", "Set", "Remove", "Deregister"),
              {"apigateway": ("GetVpcLink", "GetVpcLinks"), "apigatewayv2": ("GetVpcLink", "GetVpcLinks")}),
}
# Parameters that page or filter a list rather than name a resource.
_LIST_KEYS = {"NextToken", "nextToken", "Marker", "position", "limit", "PageSize", "MaxResults", "maxResults",
              "MaxItems", "Filters", "include", "desiredStatus", "status"}
_ANSWERED = "runbook_from_inventory"
_SENDING = "runbook_inventory_sending"  # the key of the read this call sends for every thread (see _answer)
# How long a read waits for the same read another thread sent (AWS's answer, retries and all, normally comes
# back within seconds); past this it is sent itself, as before reads went side by side.
INFLIGHT_WAIT_SECONDS = 300.0


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode()}
    raise TypeError(type(value).__name__)


def _decode(obj: dict) -> Any:
    if len(obj) == 1 and "$dt" in obj:
        return datetime.fromisoformat(obj["$dt"])
    if len(obj) == 1 and "$b64" in obj:
        return base64.b64decode(obj["$b64"])
    return obj


def _identifiers(value: Any) -> Iterator[str]:
    """Every string in a call's parameters (names, ids, ARNs), nested lists and dicts included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _identifiers(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _identifiers(item)


def _names_no_resource(params: dict) -> bool:
    return not (set(params) - _LIST_KEYS)


class RunInventory:
    """The run folder's inventory.jsonl, attached to one boto3 session (see the module docstring)."""

    def __init__(self, path: Path, polling_now, step: str | None = None) -> None:
        self.path = path
        self.step = step  # the notebook whose reads this session sends ("sent" on the answers it keeps)
        self._polling_now = polling_now  # the name of the waiter polling in this thread, or None
        self._answers: dict[str, dict] = {}
        self._offset = 0
        self._fresh: dict[str, float] = {}  # operation -> the oldest answer (time.time()) it may use
        self._sending: dict[str, threading.Event] = {}  # key -> set when the read on its way is answered
        self._polls_on_way: dict[str, dict] = {}  # key -> the `polling` line of a wait's poll on its way (any notebook)
        self._lock = threading.Lock()

    def attach(self, session: Any) -> None:
        events = session.events
        events.register("before-parameter-build", self._remember, unique_id="runbook-inventory-params")
        events.register("before-call", self._answer, unique_id="runbook-inventory-answer")
        events.register("after-call", self._learn, unique_id="runbook-inventory-learn")
        events.register("after-call-error", self._learn_error, unique_id="runbook-inventory-error")

    @contextlib.contextmanager
    def fresh(self, operations: Iterable[str] = FRESH, seconds: float = FRESH_SECONDS) -> Iterator[None]:
        """Within this block, `operations` use only answers younger than `seconds` (then read from AWS once,
        however many checks look at them)."""
        with self._lock:
            before = dict(self._fresh)
            self._fresh.update({operation: time.time() - seconds for operation in operations})
        try:
            yield
        finally:
            with self._lock:
                self._fresh = before

    # ---- the file ------------------------------------------------------------------------------------------

    def _sync(self) -> None:
        """Apply what any notebook of the run appended since this one last looked."""
        if not self.path.exists():
            return
        with open(self.path) as fh:
            fcntl.flock(fh, fcntl.LOCK_SH)
            fh.seek(self._offset)
            lines = fh.read()
            self._offset = fh.tell()
        for line in lines.splitlines():
            self._apply(json.loads(line, object_hook=_decode))

    def _apply(self, row: dict) -> None:
        """One line of inventory.jsonl: an answer kept, or what a mutation or poll forgot or updated."""
        if "forget" in row:
            self._forget_here(row["forget"])
        elif "update" in row:
            self._update_here(row["update"])
        elif "polling" in row:
            self._polls_on_way[row["polling"]["key"]] = row
        else:
            self._answers[row["key"]] = row

    def _append(self, row: dict) -> None:
        try:
            line = json.dumps(row, default=_encode, sort_keys=True)
        except (TypeError, ValueError):
            return  # an answer we cannot keep is simply read again
        with open(self.path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.write(line + "\n")

    # ---- keeping and forgetting ---------------------------------------------------------------------------

    @staticmethod
    def _key(service: str, operation: str, params: dict) -> str:
        return json.dumps([service, operation, params], default=_encode, sort_keys=True)

    def _forget_here(self, what: dict) -> None:
        for key, row in list(self._answers.items()):
            if _forgets(what, row):
                self._answers.pop(key)

    def _update_here(self, what: dict) -> None:
        fresh = {_identity(item): item for item in what["items"]}
        for row in self._answers.values():
            if row["service"] == what["service"]:
                row["parsed"] = _updated(row["parsed"], fresh, what.get("extend", False))

    def _forget(self, service: str, operation: str, params: dict, parsed: dict | None) -> None:
        """After a mutation: what CHANGES says it changed, else every answer of the service naming what it named."""
        answer = _without_metadata(parsed)
        spec = changes.after(service, operation, params, answer) if parsed and "Error" not in parsed else None
        rows: list[dict] = []
        if spec is None:
            ids = sorted(set(_identifiers(params)) | set(_identifiers(answer)))
            prefixes, effects = EFFECTS.get(service, ((), {}))
            rows.append({"forget": {"service": service, "ids": ids,
                                    "effects": effects if not prefixes or operation.startswith(prefixes) else {}}})
        else:
            rows += [{"forget": {"service": read_service, "operation": read, "match": match}}
                     for read_service, read, match in spec["forget"]]
        with self._lock:
            self._sync()
            for row in rows:
                self._append(row)
            if spec is not None:
                for read_service, read, read_params, answer in spec["same"]:
                    self._append(self._row(read_service, read, read_params, 200, answer))
                if spec["extend"]:
                    self._append({"update": {"service": service, "items": spec["extend"], "extend": True}})
                if spec.get("update"):
                    self._append({"update": {"service": service, "items": spec["update"]}})
                for read_service, read, list_key, scope, items in spec["append"]:
                    kept = self._answers.get(self._key(read_service, read, scope))
                    if kept is not None and kept["status"] < 300 and isinstance(kept["parsed"].get(list_key), list):
                        answer = {**kept["parsed"], list_key: kept["parsed"][list_key] + items}
                        self._append(self._row(read_service, read, scope, kept["status"], answer))
                    else:  # never read (or not as one list): read it again when asked
                        self._append({"forget": {"service": read_service, "operation": read, "match": scope}})
            self._sync()

    def _row(self, service: str, operation: str, params: dict, status: int, parsed: dict) -> dict:
        return {"key": self._key(service, operation, params), "service": service, "operation": operation,
                "params": params, "status": status, "parsed": parsed, "at": time.time()}

    # ---- botocore events --------------------------------------------------------------------------------

    @staticmethod
    def _remember(params: dict, context: dict, **_: Any) -> None:
        context["runbook_inventory_params"] = dict(params)

    def _answer(self, model: Any, context: dict, **_: Any) -> tuple | None:
        from vpclink_runbooks.aws.session import is_mutating

        operation = model.name
        if is_mutating(operation) or operation.startswith("Test"):
            return None
        service, params = model.service_model.service_name, context.get("runbook_inventory_params", {})
        key = self._key(service, operation, params)
        if self._polling_now():
            return self._shared_poll(key, context)
        deadline = time.monotonic() + INFLIGHT_WAIT_SECONDS
        while True:
            with self._lock:
                self._sync()
                found, pending = self._kept_or_pending(service, operation, params, key)
                if found is None and (pending is None or time.monotonic() > deadline):
                    # sent by this thread: another thread's same read waits for its answer (_learn, _done)
                    self._sending.setdefault(key, threading.Event())
                    context[_SENDING] = key
                    return None
            if found is not None:
                break
            pending.wait(max(0.0, deadline - time.monotonic()))
        return _reply(context, *found)

    def _shared_poll(self, key: str, context: dict) -> tuple | None:
        """A wait's poll is sent, unless another notebook's wait polled the same read under SHARED_POLL_SECONDS ago,
        or is polling it now (its `polling` line, not yet answered): then that answer is this poll's too (two
        notebooks waiting for one resource poll AWS about once a period)."""
        deadline = time.time() + SHARED_POLL_SECONDS
        while True:
            with self._lock, self._polls_lock():  # deciding and marking are one step for every notebook
                self._sync()
                now, row, marker = time.time(), self._answers.get(key), self._polls_on_way.get(key)
                if (row is not None and "wait" in row and row.get("sent") != self.step
                        and now - row["at"] < SHARED_POLL_SECONDS):
                    status, answer = row["status"], row["parsed"]
                    break
                on_way = (marker is not None and marker["polling"]["by"] != self.step
                          and marker["at"] > now - SHARED_POLL_SECONDS and (row is None or row["at"] < marker["at"]))
                if not on_way or now > deadline:
                    self._append({"polling": {"key": key, "by": self.step or ""}, "at": now})
                    return None
            time.sleep(0.02)  # the other notebook's answer is a round trip away
        return _reply(context, status, answer)

    @contextlib.contextmanager
    def _polls_lock(self) -> Iterator[None]:
        """The run's lock on deciding whether a poll goes out: a flock of the run folder itself (inventory.jsonl's
        own flock is taken inside, and a run folder holds only what its record seals)."""
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _kept_or_pending(self, service: str, operation: str, params: dict,
                         key: str) -> tuple[tuple[int, dict] | None, threading.Event | None]:
        """((status, answer) kept for the read, or derived from a kept list; None), and when there is none, the
        event of the same read or of the list that would answer it, on its way for another thread (or None)."""
        row = self._answers.get(key)
        if row is not None and row["at"] >= self._fresh.get(operation, 0):
            return (row["status"], row["parsed"]), None
        asked = [key]

        def usable(op: str, p: dict) -> dict | None:
            asked.append(self._key(service, op, p))
            return self._usable(service, op, p)

        derived = changes.from_list(service, operation, params, usable)
        if derived is not None:
            return derived, None
        return None, next((self._sending[k] for k in asked if k in self._sending), None)

    def _done(self, context: dict) -> None:
        """The read this call sent is answered (or failed): the threads waiting for it look again. Under the lock."""
        event = self._sending.pop(context.pop(_SENDING, None), None)
        if event is not None:
            event.set()

    def _usable(self, service: str, operation: str, params: dict) -> dict | None:
        row = self._answers.get(self._key(service, operation, params))
        return row if row is not None and row["at"] >= self._fresh.get(operation, 0) else None

    def _learn(self, http_response: Any, parsed: dict, model: Any, context: dict, **_: Any) -> None:
        from vpclink_runbooks.aws.session import THROTTLING_CODES, is_mutating

        if context.get(_ANSWERED):
            return
        service, operation = model.service_model.service_name, model.name
        params = context.get("runbook_inventory_params", {})
        if is_mutating(operation):
            self._forget(service, operation, params, parsed)
            return
        status = getattr(http_response, "status_code", 200)
        code = (parsed or {}).get("Error", {}).get("Code")
        with self._lock:
            try:
                if not (operation.startswith("Test") or status >= 500 or status == 429 or code in THROTTLING_CODES):
                    self._keep(service, operation, params, status, _without_metadata(parsed))
            finally:
                self._done(context)  # kept or not (then they send their own), threads waiting for it look again

    def _keep(self, service: str, operation: str, params: dict, status: int, kept: dict) -> None:
        """Append a read's answer (and the reads it answers too); under the lock."""
        self._sync()
        sent = {"sent": self.step or "", **({"wait": self._polling_now()} if self._polling_now() else {})}
        self._append({**self._row(service, operation, params, status, kept), **sent})
        if status < 300:
            for other in changes.aliases(service, operation, params, kept):
                self._append(self._row(service, operation, other, status, kept))
        if self._polling_now() and status < 300 and (items := _items(kept)):
            # the live state of what the poll read: kept answers that list the same resources take it
            self._append({"update": {"service": service, "items": items}})
        self._sync()

    def _learn_error(self, model: Any = None, context: dict | None = None, **_: Any) -> None:
        from vpclink_runbooks.aws.session import is_mutating

        if context is not None and _SENDING in context:  # a read that got no answer: waiting threads send theirs
            with self._lock:
                self._done(context)
        # A mutation that ended in a connection error may still have happened: forget as if it did.
        if model is not None and is_mutating(model.name):
            self._forget(model.service_model.service_name, model.name,
                         (context or {}).get("runbook_inventory_params", {}), None)


def _reply(context: dict, status: int, answer: dict) -> tuple[AWSResponse, dict]:
    """What before-call returns to answer a read from the inventory instead of sending it (marked in its context)."""
    context[_ANSWERED] = True
    response = AWSResponse(url="", status_code=status, headers={}, raw=None)
    return response, json.loads(json.dumps(answer, default=_encode), object_hook=_decode)  # a copy per answer


def resent(path: Path) -> list[dict]:
    """The reads a run sent although its inventory held their answer when they were sent: a wait's polls, and
    reads of FRESH operations in the final verify, should be the only ones (an audit of inventory.jsonl)."""
    replay = RunInventory(path, lambda: None)
    out = []
    for line in path.read_text().splitlines():
        row = json.loads(line, object_hook=_decode)
        if "sent" in row and row["key"] in replay._answers:
            out.append(row)
        replay._apply(row)
    return out


# The key that identifies a resource in the answers that list it (the first one an item has).
_IDENTITY_KEYS = ("LoadBalancerArn", "TargetGroupArn", "ListenerArn", "serviceArn", "taskArn", "containerInstanceArn",
                  "VpcLinkId", "id")


def _identity(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    return next((item[k] for k in _IDENTITY_KEYS if isinstance(item.get(k), str)), None)


def _items(answer: dict) -> list[dict]:
    """The resources an answer holds: the answer itself (GetVpcLink) or the items of its top-level lists."""
    if _identity(answer):
        return [answer]
    return [item for value in answer.values() if isinstance(value, list) for item in value if _identity(item)]


def _merged(item: dict, fresh: dict, extend: bool) -> dict:
    if not extend:
        return {**item, **fresh}
    return {**item, **{k: item.get(k, []) + [v for v in values if v not in item.get(k, [])]
                       for k, values in fresh.items() if isinstance(values, list)}}


def _updated(answer: dict, fresh: dict[str, dict], extend: bool = False) -> dict:
    """`answer` with every resource it holds that `fresh` has newer state of merged with that state (a poll may
    answer fewer fields, e.g. no tags, than the read that kept it); with `extend`, fresh's lists are added to."""
    if (key := _identity(answer)) in fresh:
        return _merged(answer, fresh[key], extend)
    return {k: [_merged(item, fresh[_identity(item)], extend) if _identity(item) in fresh else item
                for item in value] if isinstance(value, list) else value for k, value in answer.items()}


def _forgets(what: dict, row: dict) -> bool:
    """Whether a forget line (see RunInventory._forget) forgets a kept answer."""
    service, operation, params = row["service"], row["operation"], row["params"]
    if operation in STABLE:
        return False
    if "match" in what:  # one read, by the values of some of its parameters
        return (service == what["service"] and operation == what["operation"]
                and all(params.get(k) == v for k, v in what["match"].items()))
    if service == what["service"]:  # a resource is named by its parameters or found in its answer (by name -> ARN)
        return _names_no_resource(params) or bool(set(what["ids"]) & (set(_identifiers(params))
                                                                      | set(_identifiers(row["parsed"]))))
    return operation in what.get("effects", {}).get(service, ())


def _without_metadata(parsed: dict | None) -> dict:
    """An answer as kept: what AWS answered, without botocore's ResponseMetadata (request id, headers, retries)."""
    return {k: v for k, v in (parsed or {}).items() if k != "ResponseMetadata"}
