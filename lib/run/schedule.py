"""The step scheduler: a command's notebooks, each once the notebooks it needs succeeded (or converged), a few at
a time."""

from __future__ import annotations

import queue
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vpclink_runbooks.run.kernels import NOTEBOOKS, PARALLEL_STEPS, KernelPool, _import_papermill, _shutdown
from vpclink_runbooks.steps import registry

# What each notebook of apply needs before it, from the step registry (steps/registry.py); a command runs a
# notebook once its needs that are part of the command succeeded and its NEEDS_CONVERGED converged, so steps
# overlap AWS's waits: 30_ecs_service (task definition, rules, service) starts once 10_nlb has created the NLB and
# its target group, while the NLB provisions; 40_api once 20_vpc_link has created the link, while it is PENDING.
_APPLY = (registry.INSPECT, *registry.CHAIN, registry.VERIFY)
NEEDS: dict[str, tuple[str, ...]] = registry.needs_by_notebook(_APPLY)
NEEDS_CONVERGED: dict[str, tuple[str, ...]] = registry.needs_converged_by_notebook(_APPLY)

# Errors raised inside a notebook that mean "refused, nothing changed" rather than "failed".
REFUSALS = {"ParamsError", "GuardRefused", "PreflightRefused"}


def _execute(notebook: str, mode: str, params_path: Path, run_dir: Path, log_output: bool,
             pool: KernelPool | None = None, on_converged=None) -> tuple[str, str]:
    """Run one notebook (in the pool's pre-started kernel when given); returns (status, error name or '').
    `on_converged()` is called once its cell tagged `converge` has run, while the notebook goes on."""
    papermill = _import_papermill()
    from papermill.exceptions import PapermillExecutionError

    from vpclink_runbooks.run import engine

    km = pool.take(notebook) if pool is not None else None
    status = "failed"
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{notebook}.ipynb"), str(run_dir / f"{notebook}.ipynb"),
            parameters={"params_file": str(params_path), "mode": mode},
            kernel_name="python3", progress_bar=False, log_output=log_output, cwd=str(NOTEBOOKS),
            engine_name=engine.ENGINE, **({"km": km} if km is not None else {}),
            **({"on_tagged_cell": lambda tag: on_converged()} if on_converged is not None else {}),
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


def _needs(names: list[str], modes: dict[str, str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """({notebook: what must have succeeded}, {notebook: what must have converged}) within the command; a
    notebook the registry does not order needs every notebook before it."""
    whole = {nb: [d for d in NEEDS.get(nb, names[:i]) if d in modes] for i, nb in enumerate(names)}
    converged = {nb: [d for d in NEEDS_CONVERGED.get(nb, ()) if d in modes] for nb in names}
    return whole, converged


def _run_steps(steps: list[tuple[str, str]], params_path: Path, run_dir: Path, log_output: bool,
               record: dict, pool: KernelPool) -> str:
    """Execute the steps, each once the steps it needs succeeded and those it needs converged ran their converge
    cell, up to PARALLEL_STEPS at a time; a failed or refused step stops new steps from starting (running ones
    finish). Fills record["steps"]: in command order, with a failed or refused step last (where the run stopped).
    Returns the run's status."""
    schedule = _Schedule(steps, params_path, run_dir, log_output, pool)
    schedule.run()
    ordered = [schedule.done[nb] for nb in schedule.names if nb in schedule.done]
    record["steps"] = ([s for s in ordered if s["status"] == "succeeded"]
                       + [s for s in ordered if s["status"] != "succeeded"])
    failed = [s for s in record["steps"] if s["status"] != "succeeded"]
    if not failed:
        return "succeeded"
    first = failed[0]["notebook"].removesuffix(".ipynb")
    record["error"] = f"{first}: {schedule.errors.get(first, '')}"
    return failed[0]["status"]


class _Schedule:
    """One command's notebooks in flight: which may start, which run, which converged, which are done. Worker
    threads execute the notebooks and report ("converged" | "done" | "raised", notebook, value) on one queue; the
    scheduling thread alone reads and changes the state."""

    def __init__(self, steps: list[tuple[str, str]], params_path: Path, run_dir: Path, log_output: bool,
                 pool: KernelPool):
        self.names = [nb for nb, _ in steps]
        self.modes = dict(steps)
        self.needs, self.needs_converged = _needs(self.names, self.modes)
        self.params_path, self.run_dir, self.log_output, self.pool = params_path, run_dir, log_output, pool
        self.started = time.monotonic()
        self.done: dict[str, dict] = {}
        self.converged: dict[str, float] = {}  # notebook -> seconds after the start when its converge cell had run
        self.errors: dict[str, str] = {}
        self.running: set[str] = set()
        self.stopped = False
        self.events: queue.Queue[tuple[str, str, object]] = queue.Queue()
        self.width = max(1, PARALLEL_STEPS)
        self.pages = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pages")

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=self.width, thread_name_prefix="step") as workers:
            try:
                while True:
                    for nb in self.names if not self.stopped else ():
                        if nb not in self.done and nb not in self.running and len(self.running) < self.width \
                                and self.ready(nb):
                            self.running.add(nb)
                            workers.submit(self.one, nb)
                    if not self.running:
                        return
                    try:
                        self.handle(*self.events.get(timeout=1.0))  # a timeout keeps Ctrl-C deliverable
                    except queue.Empty:
                        continue
            finally:
                self.pages.shutdown(wait=True)

    def ready(self, nb: str) -> bool:
        succeeded = {d for d, step in self.done.items() if step["status"] == "succeeded"}
        return (all(d in succeeded for d in self.needs[nb])
                and all(d in self.converged or d in succeeded for d in self.needs_converged[nb]))

    def handle(self, kind: str, nb: str, value) -> None:
        if kind == "converged":
            self.converged.setdefault(nb, round(value - self.started, 2))
            return
        self.running.discard(nb)
        if kind == "raised":
            self.stopped = True
            raise value
        self.done[nb] = value
        if nb in self.converged:
            value["converged_after"] = self.converged[nb]
        self.stopped = self.stopped or value["status"] != "succeeded"

    def one(self, notebook: str) -> None:
        """Execute one notebook (a worker thread); its page is written while the next notebooks run."""
        t0 = time.monotonic()
        try:
            status, error = _execute(notebook, self.modes[notebook], self.params_path, self.run_dir,
                                     self.log_output, self.pool,
                                     on_converged=lambda: self.events.put(("converged", notebook, time.monotonic())))
        except BaseException as exc:  # noqa: BLE001 - re-raised by the scheduling thread
            self.events.put(("raised", notebook, exc))
            return
        if error:
            self.errors[notebook] = error
        step = {"notebook": f"{notebook}.ipynb", "status": status, "seconds": round(time.monotonic() - t0, 2),
                "started_after": round(t0 - self.started, 2)}
        # one page at a time: the exporter is not shared between threads
        self.pages.submit(_export_page, self.run_dir / f"{notebook}.ipynb")
        self.events.put(("done", notebook, step))


def _export_page(notebook: Path) -> None:
    """The offline HTML page of one executed notebook; a failure here never hides the run's own result."""
    if not notebook.exists():
        return
    try:
        from vpclink_runbooks.present import report

        report.export_html(notebook)
    except (ImportError, OSError, ValueError) as exc:
        print(f"  (could not write the HTML page of {notebook.name}: {exc})", file=sys.stderr)
