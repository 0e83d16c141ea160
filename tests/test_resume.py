"""Resume after a crash: `runbook apply` killed with SIGKILL mid-step and at step boundaries, then applied again,
ends with exactly one of each resource and a passing verify.

The kill points run in order over one sandbox, each from where the previous kill left the world (that is the
cheap way to crash at every stage); each kill point is also reachable from a fresh world, so any one of them can
run alone. Steps overlap (30_ecs_service runs beside 20_vpc_link and 40_api), so a kill meant for one step can
land after another step's call: a mid-step kill point whose call the world no longer needs (its resource is
already there) first destroys, or the run would complete without making that call. After every kill nothing may
be duplicated; the last test applies to completion.
"""

from __future__ import annotations

import pytest

from vpclink_runbooks.run.runner import run

from .lifecycle import LOCAL, calls, counts, kill, new_run_dir, owned, record, runs_dir, start, wait_for

pytestmark = pytest.mark.notebooks

AT_MOST_ONE = ("load_balancers", "vpc_links", "rest_apis", "ecs_services", "task_definitions")


def after_call(operation: str, kind: str):
    """Kill as soon as this mutating call has succeeded (the step is left half done). `kind` is what the call
    creates: when the world already has one, apply would not make the call."""
    def reached(run_dir):
        return any(c["operation"] == operation and c["result"] == "ok" for c in calls(run_dir))
    reached.creates = kind
    return reached


def at_start_of(notebook: str):
    """Kill when the runner starts the next notebook (the previous step finished, this one did nothing yet)."""
    def reached(run_dir):
        return (run_dir / f"{notebook}.ipynb").exists()
    return reached


KILL_POINTS = [
    pytest.param("mid 10_nlb: after CreateLoadBalancer", after_call("CreateLoadBalancer", "load_balancers"),
                 id="mid-nlb"),
    pytest.param("boundary 10_nlb -> 20_vpc_link", at_start_of("20_vpc_link"), id="before-vpc-link"),
    pytest.param("mid 20_vpc_link: after CreateVpcLink, link PENDING", after_call("CreateVpcLink", "vpc_links"),
                 id="mid-vpc-link"),
    pytest.param("mid 30_ecs_service: after RegisterTaskDefinition, no service yet",
                 after_call("RegisterTaskDefinition", "task_definitions"), id="mid-ecs-service"),
    pytest.param("mid 40_api: after CreateRestApi, no resource yet", after_call("CreateRestApi", "rest_apis"),
                 id="mid-api"),
    pytest.param("boundary 40_api -> 50_verify", at_start_of("50_verify"), id="before-verify"),
]


@pytest.mark.parametrize("where, reached", KILL_POINTS)
def test_apply_killed_leaves_no_duplicate(sandbox, where, reached):
    creates = getattr(reached, "creates", None)
    if creates and counts(sandbox)[creates]:
        # An earlier kill landed after this call (a step beside it got further): start from a fresh world.
        assert run("destroy", LOCAL, yes=True).exit_code == 0
        assert counts(sandbox)[creates] == 0, owned(sandbox)
    before = set(runs_dir().glob("*")) if runs_dir().exists() else set()
    proc = start("apply", LOCAL)
    run_dir = new_run_dir(before)
    wait_for(lambda: reached(run_dir), proc, what=where)
    kill(proc)
    assert not (run_dir / "run.json").exists()  # it really died mid-run
    found = counts(sandbox)
    assert all(found[kind] <= 1 for kind in AT_MOST_ONE), owned(sandbox)
    assert found["target_groups"] <= 1 and found["security_group_rules"] <= 1, owned(sandbox)
    assert found["lock"] == 1  # the dead run's lock is left behind; the next apply on this host takes it over


def test_apply_after_the_crashes_converges_to_exactly_one_of_each(sandbox):
    result = run("apply", LOCAL)
    rec = record(result)
    assert result.exit_code == 0 and rec["status"] == "succeeded", rec.get("error")
    assert rec["lock"]["took_over"]["command"] == "apply"  # the stale lock of the last killed run
    assert counts(sandbox) == {"load_balancers": 1, "target_groups": 1, "vpc_links": 1, "rest_apis": 1,
                               "ecs_services": 1, "task_definitions": 1, "security_group_rules": 1, "lock": 0}
    assert rec["checks"] and {c["status"] for c in rec["checks"]} <= {"pass", "skip", "warn"}
    verify = run("verify", LOCAL)
    assert verify.exit_code == 0, [c for c in record(verify)["checks"] if c["status"] == "fail"]
    again = run("apply", LOCAL)
    assert again.exit_code == 0 and record(again)["changes"] == []


def test_a_duplicate_rest_api_left_by_overlapping_runs_is_removed(sandbox):
    """Two APIs with our tags (runs that overlapped before the lock existed): apply keeps the mapped one."""
    gw = sandbox.session().client("apigateway")
    tags = {"runbook:environment": "local", "runbook:service": "orders", "runbook:managed-by": "vpclink-runbooks"}
    extra = gw.create_rest_api(name="local-orders", tags=tags, endpointConfiguration={"types": ["REGIONAL"]})["id"]
    mapped = gw.get_base_path_mapping(domainName="api.example.com", basePath="orders")["restApiId"]
    result = run("apply", LOCAL, notebooks=[("40_api", "apply")])
    rec = record(result)
    assert result.exit_code == 0, rec.get("error")
    assert [{k: c[k] for k in ("service", "operation", "resource", "result")} for c in rec["changes"]] == [
        {"service": "apigateway", "operation": "DeleteRestApi", "resource": f"restApiId={extra}", "result": "ok"}]
    assert owned(sandbox)["rest_apis"] == [mapped]
