"""API faults injected into the sandbox: boto3's standard retries absorb throttling, and a fault that outlasts them
fails the step with a message naming the call; a re-run then converges."""

from __future__ import annotations

import pytest

from vpclink_runbooks.run.runner import run
from vpclink_runbooks.sandbox.faults import server_error, throttle

from .lifecycle import LOCAL, counts, record

pytestmark = pytest.mark.notebooks

ONE_OF_EACH = {"load_balancers": 1, "target_groups": 1, "vpc_links": 1, "rest_apis": 1, "ecs_services": 1,
               "task_definitions": 1, "security_group_rules": 1, "lock": 0}


def test_apply_converges_with_a_fifth_of_all_calls_throttled(sandbox):
    with throttle(0.2, seed=7) as fault:
        result = run("apply", LOCAL)
    rec = record(result)
    assert result.exit_code == 0 and rec["status"] == "succeeded", rec.get("error")
    # the kernels' calls too: every throttled answer the run's recorder saw was one the sandbox injected
    assert rec["api_calls"]["throttled"] > 0 and len(fault.by_service) >= 4, fault.by_service
    assert fault.injected >= rec["api_calls"]["throttled"], (fault.injected, rec["api_calls"])
    assert {c["status"] for c in rec["checks"]} <= {"pass", "skip", "warn"}
    assert counts(sandbox) == ONE_OF_EACH


def test_a_fault_that_outlasts_the_retries_names_the_call_and_a_rerun_converges(sandbox):
    # the chain exists; break the API Gateway part so that the re-run has something to converge
    gw = sandbox.session().client("apigateway")
    gw.delete_base_path_mapping(domainName="api.example.com", basePath="orders")
    with server_error(1.0, services=["apigateway"]) as fault:
        result = run("apply", LOCAL)
    rec = record(result)
    assert result.exit_code == 1 and rec["status"] == "failed"
    assert fault.injected >= 11  # the first call and its 10 retries
    failed = [s for s in rec["steps"] if s["status"] == "failed"]
    assert len(failed) == 1 and rec["steps"][-1] == failed[0]
    # boto3's message names the operation and says the retries ran out
    assert "ServiceUnavailableException" in rec["error"] and "when calling the Get" in rec["error"], rec["error"]
    assert "(reached max retries: 10)" in rec["error"] and "run the command again" in rec["error"], rec["error"]
    assert counts(sandbox)["lock"] == 0  # released although the run failed

    again = run("apply", LOCAL)
    rec = record(again)
    assert again.exit_code == 0, rec.get("error")
    assert [(c["service"], c["operation"]) for c in rec["changes"]] == [("apigateway", "CreateBasePathMapping")]
    assert counts(sandbox) == ONE_OF_EACH
