"""Airflow DAG: one environment's `runbook apply`, one PapermillOperator task per notebook (see docs/airflow.md).

Copy into the DAGs folder of an Airflow deployment whose workers have this repository checked out at
RUNBOOK_ROOT with requirements.txt installed (papermill, the `python3` kernel and `vpclink_runbooks`), plus
`apache-airflow-providers-papermill`; the executed notebooks go to RUNBOOK_RUNS_DIR (default RUNBOOK_ROOT/runs).
Trigger with a config to pick the environment:

    airflow dags trigger vpclink_runbook_apply --conf '{"env": "dev"}'

STEPS and NEEDS are a copy of the step registry (lib/steps/registry.py: the notebooks `runbook apply` runs, in
order, and what each needs), kept here so workers need not import the package; tests/test_airflow_dag.py
proves the copy equals the registry (and the runner's COMMANDS["apply"] derived from it).

One difference from the runner: the runner starts 20_vpc_link and 30_ecs_service as soon as 10_nlb has created
the NLB (while it provisions) and 40_api as soon as 20_vpc_link has created the link (while it is PENDING). An
Airflow task is a whole notebook, so here they wait for the whole of 10_nlb and 20_vpc_link, waits included: on
AWS that puts 40_api's own time on the DAG's critical path (registry.whole_needs_by_notebook).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow import DAG
from airflow.providers.papermill.operators.papermill import PapermillOperator

RUNBOOK_ROOT = os.environ.get("RUNBOOK_ROOT", "/opt/vpclink-runbooks")
# Where the executed notebooks go: RUNBOOK_RUNS_DIR, as for the runner's records, else RUNBOOK_ROOT/runs.
RUNS_DIR = os.environ.get("RUNBOOK_RUNS_DIR", RUNBOOK_ROOT + "/runs")
# (notebook, mode) in the order `runbook apply` lists them.
STEPS = [
    ("00_inspect", "apply"),
    ("10_nlb", "apply"),
    ("20_vpc_link", "apply"),
    ("30_ecs_service", "apply"),
    ("40_api", "apply"),
    ("50_verify", "plan"),
]
# What each notebook needs done first, whole: the VPC link and the ECS service both need only the NLB, so Airflow
# runs them side by side.
NEEDS = {
    "00_inspect": (),
    "10_nlb": ("00_inspect",),
    "20_vpc_link": ("10_nlb",),
    "30_ecs_service": ("10_nlb",),
    "40_api": ("20_vpc_link",),
    "50_verify": ("00_inspect", "10_nlb", "20_vpc_link", "30_ecs_service", "40_api"),
}
# Jinja: the environment from the trigger's config (default dev); one output folder per DAG run.
ENV = "{{ dag_run.conf.get('env', 'dev') }}"
OUTPUT = RUNS_DIR + "/" + ENV + "/airflow-{{ run_id }}"


def make_output_folder(context) -> None:
    """papermill writes a local notebook only into an existing folder: make this run's before each task."""
    output = getattr(context["task"].output_nb, "url", context["task"].output_nb)  # rendered by now
    if "://" not in output:  # s3://... needs no folder
        os.makedirs(os.path.dirname(output), exist_ok=True)


with DAG(
    dag_id="vpclink_runbook_apply",
    start_date=datetime(2024, 1, 1),
    schedule=None,  # on demand, like `runbook apply`
    catchup=False,
    # One writer per environment: Airflow does not take the runbook's lock (only the runner does), so never let
    # two runs of this DAG overlap. Use one DAG per environment if environments must run in parallel.
    max_active_runs=1,
    default_args={"retries": 1},  # every step resumes from what exists, so a retry is safe
    tags=["vpclink-runbooks"],
) as dag:
    tasks = {
        notebook: PapermillOperator(
            task_id=notebook,
            input_nb=f"{RUNBOOK_ROOT}/notebooks/{notebook}.ipynb",
            output_nb=f"{OUTPUT}/{notebook}.ipynb",
            parameters={"params_file": f"{RUNBOOK_ROOT}/params/{ENV}.yaml", "mode": mode},
            kernel_name="python3",
            language_name="python",
            pre_execute=make_output_folder,
        )
        for notebook, mode in STEPS
    }
    for notebook, needs in NEEDS.items():
        for need in needs:
            tasks[need] >> tasks[notebook]
