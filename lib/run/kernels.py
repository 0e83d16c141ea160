"""The kernels of a run: started ahead, warmed with the notebooks' imports, reused between notebooks."""

from __future__ import annotations

import ast
import json
import os
import queue
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = PROJECT_ROOT / "notebooks"
# Notebooks of one run executing at once, each in its own kernel (see KernelPool). Three: while 20_vpc_link waits
# for its link and 30_ecs_service for its targets, 40_api converges (steps/registry.py, needs_converged).
PARALLEL_STEPS = int(os.environ.get("RUNBOOK_PARALLEL_STEPS", "3"))
# Kernels started with the run, before any notebook asks for one: the first notebook's, and one for the next. The
# pool starts another only when a notebook finds none idle (up to its size); in a batch of runs (run_many) one:
# a run's start is then CPU-bound, and a kernel not started there starts later, during an AWS wait.
KERNELS_AHEAD = int(os.environ.get("RUNBOOK_KERNELS_AHEAD", "2"))
FRESH_KERNELS = os.environ.get("RUNBOOK_FRESH_KERNELS") == "1"


def _import_papermill():
    # nbformat imports jsonschema, which compiles rfc3987_syntax's grammars at import time when that optional
    # package is installed (~2 s of every command); nbformat's notebook schema uses no format it checks.
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import papermill

    return papermill


def _warm_up_code(notebook: str) -> str:
    """The notebook's own import statements: run in its kernel before its turn, so imports overlap other work."""
    cells = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text())["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] != "code" or "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        try:
            tree = ast.parse("".join(cell["source"]))
        except SyntaxError:
            continue
        lines += [ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    return "\n".join(lines)


# Run in a kernel after its imports and after each reset: collect what is garbage, then move every surviving object
# (modules, botocore's parsed models, pandas) out of the collector's sight, so it stops rescanning them while a
# notebook allocates (measured: ~6% less CPU a run). Defines no name. Only in the kernels, which live for one run:
# the runner may be embedded in a long-lived process whose objects must stay collectable.
_FREEZE = "__import__('gc').collect()\n__import__('gc').freeze()"


class KernelPool:
    """Kernels started before their turn and handed to papermill, then reused: start-up and imports (~1-2 s of
    CPU a kernel) are paid once per concurrent step instead of once per notebook, and overlap the account check.

    Each kernel is warmed with the import statements of the run's notebooks. Between notebooks a kernel's user
    namespace is reset (IPython's reset, new session: execution counts restart at 1), so a notebook sees nothing
    its predecessor defined; only imported modules stay loaded. A kernel whose notebook failed is discarded.
    RUNBOOK_FRESH_KERNELS=1 gives every notebook a new kernel instead.
    """

    def __init__(self, notebooks: list[str], size: int = PARALLEL_STEPS):
        self._code = "\n".join(dict.fromkeys(line for nb in notebooks for line in _warm_up_code(nb).splitlines()))
        self._remaining = len(notebooks)
        self._size = max(1, min(size, len(notebooks)))
        self._live = 0  # kernels started (or starting) and not shut down
        self._lock = threading.Lock()
        self._idle: queue.Queue[Future] = queue.Queue()
        self._all: list[Future] = []
        self._executor = ThreadPoolExecutor(max_workers=self._size, thread_name_prefix="kernel-start")
        for _ in range(max(1, min(KERNELS_AHEAD, self._size))):
            self._add()

    def _add(self) -> None:
        with self._lock:
            self._live += 1
        future = self._executor.submit(self._start)
        self._all.append(future)
        self._idle.put(future)

    def _grow(self) -> None:
        """One more kernel starting when none is idle or starting and the pool has room."""
        with self._lock:
            grow = self._idle.empty() and self._live < self._size and self._remaining > self._live
        if grow:
            self._add()

    def _start(self):
        import asyncio

        from jupyter_client.manager import AsyncKernelManager

        # IPC (unix sockets in a private directory), not TCP: ipykernel warns "Kernel is running over TCP without
        # encryption" on every start over TCP, and nothing but this process needs to reach the kernel.
        km = AsyncKernelManager(kernel_name="python3", transport="ipc",
                                ip=os.path.join(tempfile.mkdtemp(prefix="rbk-"), "k"))

        async def start() -> None:
            # The kernel inherits this process's environment now: the run dir and call log are already set.
            await km.start_kernel(cwd=str(NOTEBOOKS))
            # its errors surface when a notebook's imports run
            await _send(km, self._code + "\n" + _FREEZE, wait_reply=False)

        asyncio.run(start())
        return km

    def take(self, notebook: str):
        """A started kernel manager for the notebook, or None if none can be started here (papermill then starts
        its own and reports why it cannot)."""
        self._grow()  # none idle: start one for this notebook
        future = self._idle.get()
        try:
            return future.result()
        except Exception as exc:  # noqa: BLE001 - papermill starts its own kernel and names the real problem
            print(f"  (could not start a kernel ahead for {notebook}: {exc})", file=sys.stderr)
            return None

    def give_back(self, km, succeeded: bool) -> None:
        """After a notebook: reset and reuse its kernel, or shut it down (failed, or no notebook left for it)."""
        import asyncio

        with self._lock:
            self._remaining -= 1
            reuse = succeeded and km is not None and not FRESH_KERNELS and self._remaining > 0
        if reuse:
            try:
                asyncio.run(_send(km, "get_ipython().reset(new_session=True)\n" + _FREEZE, wait_reply=True))
            except Exception as exc:  # noqa: BLE001 - a kernel that cannot reset is replaced, not reused
                print(f"  (could not reset a kernel for reuse: {exc})", file=sys.stderr)
                reuse = False
        if reuse:
            done: Future = Future()
            done.set_result(km)
            self._all.append(done)
            self._idle.put(done)
            return
        _shutdown(km)
        with self._lock:
            self._live -= 1
        if succeeded and self._remaining > 0:
            self._add()

    def close(self) -> None:
        """Shut down every kernel still running (the last ones, or those a failed run never used)."""
        self._executor.shutdown(wait=True, cancel_futures=True)  # kernels not yet starting never start
        while not self._idle.empty():
            future = self._idle.get()
            if not future.cancelled() and future.exception() is None:
                _shutdown(future.result())


async def _send(km, code: str, *, wait_reply: bool) -> None:
    """Run code silently in a kernel; with wait_reply, until it finished (raising if it failed)."""
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        msg_id = client.execute(code, silent=True, store_history=False)
        while wait_reply:
            reply = await client.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                if reply["content"]["status"] != "ok":
                    raise RuntimeError(f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}")
                break
    finally:
        client.stop_channels()


def _shutdown(km) -> None:
    import asyncio

    if km is not None:
        asyncio.run(km.shutdown_kernel(now=True))


def _warm_up_runner() -> None:
    """Import papermill and the page exporter in the background while the run checks the account and locks."""
    def imports() -> None:
        _import_papermill()
        from vpclink_runbooks.present import report

        report.offline_exporter()

    threading.Thread(target=imports, name="warm-up", daemon=True).start()
