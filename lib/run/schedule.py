"""The step scheduler: a command's notebooks, each once the notebooks it needs succeeded, a few at a time."""

from __future__ import annotations

import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from vpclink_runbooks.run.kernels import NOTEBOOKS, PARALLEL_STEPS, KernelPool, _import_papermill, _shutdown
from vpclink_runbooks.steps import registry

# What each notebook of apply needs done before it, from the step registry (steps/registry.py); a command runs a
# notebook once its needs that are part of the command succeeded, so independent steps overlap: 30_ecs_service
# (task definition, rules, service) does not wait for the VPC link, and 20_vpc_link/40_api do not wait for the
# service to stabilise.
NEEDS: dict[str, tuple[str, ...]] = registry.needs_by_notebook((registry.INSPECT, *registry.CHAIN, registry.VERIFY))

# Errors raised inside a notebook that mean "refused, nothing changed" rather than "failed".
REFUSALS = {"ParamsError", "GuardRefused", "PreflightRefused"}


def _execute(notebook: str, mode: str, params_path: Path, run_dir: Path, log_output: bool,
             pool: KernelPool | None = None) -> tuple[str, str]:
    """Run one notebook (in the pool's pre-started kernel when given); returns (status, error name or '')."""
    papermill = _import_papermill()
    from papermill.exceptions import PapermillExecutionError

    km = pool.take(notebook) if pool is not None else None
    status = "failed"
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{notebook}.ipynb"), str(run_dir / f"{notebook}.ipynb"),
            parameters={"params_file": str(params_path), "mode": mode},
            kernel_name="python3", progress_bar=False, log_output=log_output, cwd=str(NOTEBOOKS),
            **({"km": km} if km is not None else {}),
        )
        status = "succeeded"
        return status, ""
    except PapermillExecutionError as exc:
        # boto3's message names the operation (and "reached max retries" when throttling or 5xx outlasted them)
        error = f"{exc.ename}: {exc.evalue}"
        if "(reached max retries" in exc.evalue:
            error += (" -- AWS kept failing through boto3's retries; once it recovers, run the command again: "
                      "every step resumes from what exists")
        print(f"  {notebook}: {error}", file=sys.stderr)
        return ("refused" if exc.ename in REFUSALS else "failed"), error
    finally:
        if pool is not None:
            pool.give_back(km, status == "succeeded")
        else:
            _shutdown(km)


def _run_steps(steps: list[tuple[str, str]], params_path: Path, run_dir: Path, log_output: bool,
               record: dict, pool: KernelPool) -> str:
    """Execute the steps, each once the steps it needs succeeded, up to PARALLEL_STEPS at a time; a failed or
    refused step stops new steps from starting (running ones finish). Fills record["steps"]: in command order,
    with a failed or refused step last (where the run stopped). Returns the run's status."""
    names = [nb for nb, _ in steps]
    modes = dict(steps)
    needs = {nb: [d for d in NEEDS.get(nb, names[:i]) if d in modes] for i, nb in enumerate(names)}
    started = time.monotonic()
    done: dict[str, dict] = {}
    errors: dict[str, str] = {}
    pages = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pages")

    def one(notebook: str) -> dict:
        t0 = time.monotonic()
        status, error = _execute(notebook, modes[notebook], params_path, run_dir, log_output, pool)
        if error:
            errors[notebook] = error
        step = {"notebook": f"{notebook}.ipynb", "status": status, "seconds": round(time.monotonic() - t0, 2),
                "started_after": round(t0 - started, 2)}
        # Its page while the next notebooks run (one at a time: the exporter is not shared between threads).
        pages.submit(_export_page, run_dir / f"{notebook}.ipynb")
        return step

    running: dict[Future, str] = {}
    stopped = False
    with ThreadPoolExecutor(max_workers=max(1, PARALLEL_STEPS), thread_name_prefix="step") as steps_pool:
        try:
            while True:
                if not stopped:
                    for nb in names:
                        if (nb not in done and nb not in running.values()
                                and all(done.get(d, {}).get("status") == "succeeded" for d in needs[nb])
                                and len(running) < max(1, PARALLEL_STEPS)):
                            running[steps_pool.submit(one, nb)] = nb
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    nb = running.pop(future)
                    done[nb] = future.result()
                    stopped = stopped or done[nb]["status"] != "succeeded"
        finally:
            pages.shutdown(wait=True)
    ordered = [done[nb] for nb in names if nb in done]
    record["steps"] = ([s for s in ordered if s["status"] == "succeeded"]
                       + [s for s in ordered if s["status"] != "succeeded"])
    failed = [s for s in record["steps"] if s["status"] != "succeeded"]
    if not failed:
        return "succeeded"
    first = failed[0]["notebook"].removesuffix(".ipynb")
    record["error"] = f"{first}: {errors.get(first, '')}"
    return failed[0]["status"]


def _export_page(notebook: Path) -> None:
    """The offline HTML page of one executed notebook; a failure here never hides the run's own result."""
    if not notebook.exists():
        return
    try:
        from vpclink_runbooks.present import report

        report.export_html(notebook)
    except (ImportError, OSError, ValueError) as exc:
        print(f"  (could not write the HTML page of {notebook.name}: {exc})", file=sys.stderr)
