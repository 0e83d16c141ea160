"""Helpers for the lifecycle tests (destroy, resume, lock, faults): read the emulator with plain boto3, and run
`runbook` as a real subprocess that can be killed like a crashed machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vpclink_runbooks.aws import session as aws_mod
from vpclink_runbooks.aws.run_inventory import FILE, RunInventory

from .conftest import ROOT

LOCAL = str(ROOT / "params" / "local.yaml")
MANAGED = ("runbook:managed-by", "vpclink-runbooks")
LOCK_PARAMETER = "/vpclink-runbooks/local/lock"


def _ours(tags) -> bool:
    if isinstance(tags, list):
        tags = {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in tags}
    return (tags or {}).get(MANAGED[0]) == MANAGED[1]


def owned(box, cluster: str = "local-ecs", family: str = "local-orders") -> dict[str, list[str]]:
    """Everything in the emulator tagged by the runbook (any environment), by kind."""
    s = box.session()
    elbv2, gw, ecs, ec2, ssm = (s.client(n) for n in ("elbv2", "apigateway", "ecs", "ec2", "ssm"))

    def elb_tagged(arns: list[str]) -> list[str]:
        if not arns:
            return []
        described = elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]
        return sorted(d["ResourceArn"] for d in described if _ours(d["Tags"]))

    service_arns = ecs.list_services(cluster=cluster)["serviceArns"]
    services = ecs.describe_services(cluster=cluster, services=service_arns, include=["TAGS"])["services"] \
        if service_arns else []
    try:
        lock = [ssm.get_parameter(Name=LOCK_PARAMETER)["Parameter"]["Name"]]
    except ssm.exceptions.ParameterNotFound:
        lock = []
    lbs = [lb["LoadBalancerArn"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]]
    groups = [tg["TargetGroupArn"] for tg in elbv2.describe_target_groups()["TargetGroups"]]
    definitions = ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]
    rules = ec2.describe_security_group_rules()["SecurityGroupRules"]
    return {
        "load_balancers": elb_tagged(lbs),
        "target_groups": elb_tagged(groups),
        "vpc_links": sorted(v["id"] for v in gw.get_vpc_links()["items"] if _ours(v.get("tags"))),
        "rest_apis": sorted(a["id"] for a in gw.get_rest_apis()["items"] if _ours(a.get("tags"))),
        "ecs_services": sorted(sv["serviceName"] for sv in services if sv["status"] == "ACTIVE"),
        "task_definitions": sorted(definitions),
        "security_group_rules": sorted(r["SecurityGroupRuleId"] for r in rules if _ours(r.get("Tags"))),
        "lock": lock,
    }


def counts(box) -> dict[str, int]:
    return {kind: len(items) for kind, items in owned(box).items()}


def world(box, domain: str = "api.example.com", cluster: str = "local-ecs") -> dict:
    """The pre-existing world, as ids: what destroy must leave exactly as it was."""
    s = box.session()
    ec2, ecs, gw, acm = (s.client(n) for n in ("ec2", "ecs", "apigateway", "acm"))
    rules = [r for r in ec2.describe_security_group_rules()["SecurityGroupRules"] if not _ours(r.get("Tags"))]
    return {
        "vpcs": sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]),
        "subnets": sorted(sn["SubnetId"] for sn in ec2.describe_subnets()["Subnets"]),
        "instances": sorted((i["InstanceId"], i["State"]["Name"]) for r in ec2.describe_instances()["Reservations"]
                            for i in r["Instances"]),
        "security_groups": sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]),
        "other_rules": sorted(r["SecurityGroupRuleId"] for r in rules),
        "cluster": [c["status"] for c in ecs.describe_clusters(clusters=[cluster])["clusters"]],
        "container_instances": sorted(ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]),
        "domain": gw.get_domain_name(domainName=domain)["domainName"],
        "other_mappings": sorted((m["basePath"], m["restApiId"], m.get("stage"))
                                 for m in gw.get_base_path_mappings(domainName=domain)["items"]
                                 if m["basePath"] != "orders"),
        "other_apis": sorted(a["id"] for a in gw.get_rest_apis()["items"] if not _ours(a.get("tags"))),
        "certificates": sorted(c["CertificateArn"] for c in acm.list_certificates()["CertificateSummaryList"]),
        "other_task_definitions": sorted(arn for arn in ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]
                                         if ":task-definition/local-orders:" not in arn),
        "other_tasks": sorted(ecs.list_tasks(cluster=cluster)["taskArns"]),
    }


def record(result) -> dict:
    return json.loads((result.run_dir / "run.json").read_text())


# ---- runbook as a subprocess -----------------------------------------------------------------------------

def runs_dir(environment: str = "local") -> Path:
    return Path(os.environ["RUNBOOK_RUNS_DIR"]) / environment


def start(*args: str) -> subprocess.Popen:
    """`python -m vpclink_runbooks.cli ARGS` in its own session (so it can be killed as a group)."""
    return subprocess.Popen([sys.executable, "-m", "vpclink_runbooks.cli", *args], env=dict(os.environ),
                            cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def new_run_dir(before: set[Path], timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = set(runs_dir().glob("*")) - before if runs_dir().exists() else set()
        if fresh:
            return max(fresh)
        time.sleep(0.05)
    raise AssertionError("the runbook subprocess created no run directory")


def calls(run_dir: Path) -> list[dict]:
    log = run_dir / "calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the runbook and everything it started, as a crash would: the runner's process group, and the
    notebook kernels (jupyter starts each kernel in a session of its own)."""
    kernels = _descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in kernels:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)
    proc.stdout.close()


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 240, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the runbook exited ({proc.returncode}) before {what}:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.05)
    kill(proc)
    raise AssertionError(f"timed out waiting for {what}")


def notebook(sandbox, run_dir, step: str) -> aws_mod.Aws:
    """What begin() makes in one notebook's kernel: a session with the recorder and the run inventory."""
    session = sandbox.session()
    aws = aws_mod.Aws(session, aws_mod.CallRecorder(step=step), step)
    aws.inventory = RunInventory(run_dir / FILE, aws_mod.polling_now, step)
    aws.inventory.attach(session)
    return aws
