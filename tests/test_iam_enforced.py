"""Least privilege, proved against an emulator that enforces IAM (moto's reset-auth), as an operator who holds
only the generated policy (resources widened to "*": moto checks every non-S3 action against "*", so these
tests prove the action set; test_policy proves the scoping).

- plan, apply, verify and destroy pass with the generated policy;
- every action in the policy, removed on its own, makes the run that needs it fail with an error naming it.

Which action a run needs, in what order and in which notebook, is read from the emulator's own authorization
log (what CloudTrail would show), never from a list kept here. Removing an action makes the run stop at the first
call that needs it, having done everything before, so the next removal in first-use order gets past it: the
sweep walks through apply (then destroy) with one failing run per action. To keep that affordable each
removal runs only the notebook of the command that first needs the action (the command's earlier notebooks would
repeat reads the sweep has already proved); the lifecycle test runs the whole commands. Actions that only repair
or drift needs are proved with the doctor's injected faults and two drifts apply corrects; iam:PassRole (only
when the task has secrets, so an execution role) with such params.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import pytest
import requests

from vpclink_runbooks.params import load_params
from vpclink_runbooks.policy import policy_document
from vpclink_runbooks.run.runner import notebooks_for, run
from vpclink_runbooks.sandbox import behaviours
from vpclink_runbooks.sandbox.server import _SandboxSession

from .conftest import ROOT, write_params
from .test_doctor import FAULTS, Chain

pytestmark = pytest.mark.notebooks

LOCAL = str(ROOT / "params" / "local.yaml")
LOCK_PARAMETER = "/vpclink-runbooks/local/lock"


def record(result) -> dict:
    return json.loads((result.run_dir / "run.json").read_text())


def actions_of(document: dict) -> set[str]:
    return {a for s in document["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


@dataclass
class Enforced:
    """The enforced sandbox: an admin (for the test's own reads and fault injection) and the operator."""

    box: object
    params_path: str
    keys: dict[str, dict]
    # action -> what proved it: "<command>: <error naming it>"
    proved: dict[str, str] = field(default_factory=dict)
    order: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def session(self, user: str = "admin", region: str | None = None):
        key = self.keys[user]
        return _SandboxSession(self.box.endpoint, aws_access_key_id=key["AccessKeyId"],
                               aws_secret_access_key=key["SecretAccessKey"], region_name=region or self.box.region)

    def grant(self, *, without: tuple[str, ...] = (), params_path: str | None = None) -> dict:
        document = policy_document(load_params(params_path or self.params_path), wildcard_resources=True,
                                   without=without)
        self.session().client("iam").put_user_policy(UserName="operator", PolicyName="runbook",
                                                     PolicyDocument=json.dumps(document))
        return document

    def run_logged(self, command: str, *, yes: bool = False, params_path: str | None = None,
                   notebooks: list[tuple[str, str]] | None = None):
        """Run as the operator; returns (result, {step: the actions it first needed, in first-use order}), the step
        read from each request's User-Agent ("runner" for the runner's own calls: identity, lock)."""
        start = len(behaviours.AUTHORIZATIONS)
        result = run(command, params_path or self.params_path, yes=yes, notebooks=notebooks)
        used: dict[str, list[str]] = {}
        for who, action, step in behaviours.AUTHORIZATIONS[start:]:
            if who.endswith(":user/operator") and not any(action in seen for seen in used.values()):
                used.setdefault(step or "runner", []).append(action)
        return result, used

    def clear_lock(self) -> None:
        """A run denied ssm:DeleteParameter cannot release its lock; the admin breaks it (as `unlock --force`)."""
        ssm = self.session().client("ssm")
        try:
            ssm.delete_parameter(Name=LOCK_PARAMETER)
        except ssm.exceptions.ParameterNotFound:
            pass

    def prove(self, action: str, command: str, *, yes: bool = False, params_path: str | None = None,
              notebook: str | None = None) -> str | None:
        """Run `command` (only its `notebook`, if given) without `action`; None when it failed naming the action,
        else what went wrong."""
        self.grant(without=(action,), params_path=params_path)
        steps = [s for s in notebooks_for(command, yes) if s[0] == notebook] if notebook else None
        try:
            result, _ = self.run_logged(command, yes=yes, params_path=params_path, notebooks=steps)
        finally:
            self.grant(params_path=params_path)
            self.clear_lock()
        error = record(result).get("error") or ""
        if result.exit_code != 1 or action not in error:
            return f"{command} without {action}: exit {result.exit_code}, error {error[:300]!r}"
        self.proved[action] = f"{command}: {error[:200]}"
        return None


class AdminBox:
    """The sandbox seen through the admin's credentials (test_doctor's Chain reads and breaks the chain with it)."""

    def __init__(self, enforced: Enforced):
        self._enforced, self.world = enforced, enforced.box.world

    def session(self, region: str | None = None):
        return self._enforced.session("admin", region)

    def __getattr__(self, name: str):  # account_id, region, endpoint of the sandbox
        return getattr(self._enforced.box, name)


@pytest.fixture(scope="module")
def enforced(sandbox):
    iam = sandbox.session().client("iam")
    keys = {}
    for user in ("admin", "operator"):
        iam.create_user(UserName=user)
        keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
    iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    env = Enforced(sandbox, LOCAL, keys)
    env.grant()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = keys["operator"]["AccessKeyId"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = keys["operator"]["SecretAccessKey"]
    requests.post(f"{sandbox.endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        yield env
    finally:
        requests.post(f"{sandbox.endpoint}/moto-api/reset-auth", data=b"inf", timeout=10)
        os.environ.update({k: v for k, v in saved.items() if v is not None})


def test_enforcement_is_on(enforced):
    """The emulator really refuses: an unknown key, and the operator outside its policy."""
    denied = enforced.session("operator").client("ecs")
    with pytest.raises(denied.exceptions.ClientError, match="not authorized to perform: ecs:ListClusters"):
        denied.list_clusters()
    stranger = _SandboxSession(enforced.box.endpoint, aws_access_key_id="AKIAUNKNOWN00000000",
                               aws_secret_access_key="x", region_name=enforced.box.region).client("ec2")
    with pytest.raises(stranger.exceptions.ClientError):
        stranger.describe_vpcs()


def test_lifecycle_passes_with_only_the_generated_policy(enforced):
    for command, yes in (("plan", False), ("apply", False), ("verify", False), ("destroy", True)):
        result, used = enforced.run_logged(command, yes=yes)
        assert result.exit_code == 0, (command, record(result).get("error"))
        enforced.order[command] = used
    assert record(result)["changes"], "destroy removed what apply built"
    assert enforced.order["apply"] and enforced.order["destroy"]


def granted(enforced: Enforced) -> set[str]:
    return actions_of(policy_document(load_params(enforced.params_path), wildcard_resources=True))


def _sweep(enforced: Enforced, command: str, *, yes: bool = False) -> list[str]:
    """Notebook by notebook: each action it first needed, removed alone, fails it naming the action; then the
    notebook runs with the whole policy, so the next one starts where the command would."""
    problems = []
    steps = notebooks_for(command, yes)
    for action in enforced.order[command].get("runner", []):  # the lock: any one notebook of the command
        if action not in enforced.proved and action in granted(enforced):
            problem = enforced.prove(action, command, yes=yes, notebook=steps[0][0])
            if problem:
                problems.append(f"runner: {problem}")
    for notebook, mode in steps:
        for action in enforced.order[command].get(notebook, []):
            if action not in enforced.proved and action in granted(enforced):
                problem = enforced.prove(action, command, yes=yes, notebook=notebook)
                if problem:
                    problems.append(f"{notebook}: {problem}")
        finished, _ = enforced.run_logged(command, yes=yes, notebooks=[(notebook, mode)])
        assert finished.exit_code == 0, (notebook, record(finished).get("error"))
    return problems


def test_each_action_apply_needs_fails_apply_naming_it(enforced):
    assert "apply" in enforced.order, "needs the lifecycle test first"
    problems = _sweep(enforced, "apply")
    assert not problems, problems


def test_each_action_verify_needs_fails_verify_naming_it(enforced):
    problems = _sweep(enforced, "verify")
    assert not problems, problems


def nlb_lost_a_subnet(c: Chain) -> None:
    lb = c.lb
    c.elbv2.set_subnets(LoadBalancerArn=lb["LoadBalancerArn"], Subnets=[lb["AvailabilityZones"][0]["SubnetId"]])


def health_check_changed(c: Chain) -> None:
    c.elbv2.modify_target_group(TargetGroupArn=c.target_group["TargetGroupArn"], HealthCheckProtocol="HTTP",
                                HealthCheckPath="/status")


def stray_target(c: Chain) -> None:
    c.elbv2.register_targets(TargetGroupArn=c.target_group["TargetGroupArn"],
                             Targets=[{"Id": c.box.world["instance_ids"][0], "Port": 10001}])


# Drift that apply corrects (and verify does not report), with the notebook that corrects it.
DRIFTS = [("NLB lost a subnet", nlb_lost_a_subnet, "10_nlb"),
          ("target group health check changed", health_check_changed, "10_nlb")]


def test_each_action_only_drift_or_repair_needs_fails_naming_it(enforced):
    """For each fault the runbook repairs (the doctor's) and each drift apply corrects: what fixing it needed
    (authorization log), then each action no other phase proves, removed: fixing fails naming it (the fault is
    injected again before, and fixed with the whole policy after)."""
    chain = Chain(AdminBox(enforced))
    problems = []
    later = {a for actions in enforced.order["destroy"].values() for a in actions} | {"iam:PassRole"}
    cases = [(f.name, f.inject, "repair", True, None) for f in FAULTS if f.owned] + \
            [("a target on a port no task listens on", stray_target, "repair", True, None)] + \
            [(name, inject, "apply", False, notebook) for name, inject, notebook in DRIFTS]
    for name, inject, command, yes, notebook in cases:
        left = granted(enforced) - set(enforced.proved) - later
        if not left:
            break
        steps = [(notebook, "apply")] if notebook else None
        inject(chain)
        fixed, used = enforced.run_logged(command, yes=yes, notebooks=steps)
        assert fixed.exit_code == 0, (name, record(fixed).get("error"))
        for action in [a for actions in used.values() for a in actions if a in left]:
            inject(chain)
            problem = enforced.prove(action, command, yes=yes, notebook=notebook)
            if problem:
                problems.append(f"{name}: {problem}")
            again, _ = enforced.run_logged(command, yes=yes, notebooks=steps)
            assert again.exit_code == 0, (name, record(again).get("error"))
    assert not problems, problems


def test_pass_role_is_needed_when_the_task_has_secrets(enforced, tmp_path):
    """The execution role that reads the secrets is handed to ECS: without iam:PassRole, apply fails naming it."""
    arn = f"arn:aws:ssm:{enforced.box.region}:{enforced.box.account_id}:parameter/orders/db-password"
    # the parameter exists (pre-flight refuses a secret ARN that does not), so apply gets as far as the role
    enforced.session().client("ssm").put_parameter(Name="/orders/db-password", Value="x", Type="SecureString",
                                                   Overwrite=True)
    with_secrets = str(write_params(tmp_path, service__secrets={"DB_PASSWORD": arn}))
    problem = enforced.prove("iam:PassRole", "apply", params_path=with_secrets)
    assert problem is None, problem


def test_each_action_destroy_needs_fails_destroy_naming_it(enforced):
    problems = _sweep(enforced, "destroy", yes=True)
    assert not problems, problems


def test_every_action_in_the_policy_is_proved_needed(enforced):
    """No grant is spare: each action the policy holds was proved by a run that failed without it."""
    unproved = granted(enforced) - set(enforced.proved)
    assert not unproved, sorted(unproved)


PATHS = {
    "v2-alb-dynamic-ports": dict(environment="albiam", service__name="shop", service__host_port=None,
                                 service__health_check_path="/health", api__base_path="shop", vpc_link={"version": 2},
                                 nlb={"type": "application", "subnets": None, "listener_port": 8000}),
    "v2-nlb-awsvpc": dict(environment="ipiam", service__name="ledger", service__host_port=None,
                          service__network_mode="awsvpc", api__base_path="ledger", vpc_link={"version": 2}),
}


@pytest.mark.parametrize("path", PATHS)
def test_other_paths_pass_with_their_own_generated_policy(enforced, tmp_path, path):
    """The newer paths need actions the default one does not (their own security groups, the ALB's): their
    environment's policy grants them, and apply, verify and destroy pass with it alone."""
    params_path = str(write_params(tmp_path, **PATHS[path]))
    enforced.grant(params_path=params_path)
    try:
        for command, yes in (("apply", False), ("verify", False), ("destroy", True)):
            result, _ = enforced.run_logged(command, yes=yes, params_path=params_path)
            assert result.exit_code == 0, (path, command, record(result).get("error"))
    finally:
        enforced.grant()
