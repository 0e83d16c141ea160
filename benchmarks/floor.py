"""The floor: what any command that leaves an executed notebook pays before its first AWS call, and its parts.

The floor is one process running papermill on a notebook that holds only the verify notebook's imports (a kernel
starts, lib loads; no AWS call, no run record, no HTML page). Its parts, each its own process so each can be
driven down on its own: the interpreter's start, `import papermill`, a kernel's start (start, ready, shut down),
lib's import in a started kernel, and the page (one executed notebook to HTML). Each part's process prints the
seconds of the part it measures inside it ("inner"), beside the process's wall.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.procs import PYTHON, clean_env, must, stats, timed

FLOOR_CODE = """import sys
sys.modules.setdefault("rfc3987_syntax", None)  # as lib/run/kernels.py's _import_papermill: skip a 2 s grammar build
import papermill
papermill.execute_notebook(sys.argv[1], sys.argv[2], kernel_name="python3", progress_bar=False)
"""

_CLOCK = "import json, sys, time\nt0 = time.monotonic()\n"
_SAY = "print(json.dumps({'inner': round(time.monotonic() - t0, 3)}))\n"

IMPORT_PAPERMILL = _CLOCK + """sys.modules.setdefault("rfc3987_syntax", None)
import papermill
""" + _SAY

KERNEL_START = """import json, sys, time
from jupyter_client.manager import start_new_kernel
t0 = time.monotonic()
km, kc = start_new_kernel(kernel_name="python3")  # returns once the kernel answers (wait_for_ready)
started = time.monotonic() - t0
code = sys.argv[1] if len(sys.argv) > 1 else ""
t1 = time.monotonic()
if code:
    reply = kc.execute_interactive(code, timeout=300)
    assert reply["content"]["status"] == "ok", reply["content"]
ran = time.monotonic() - t1
kc.stop_channels()
km.shutdown_kernel(now=False)
print(json.dumps({"inner": round(ran if code else started, 3), "kernel_start": round(started, 3)}))
"""

# as the runner writes its pages: papermill imported first (so without rfc3987-syntax's grammar build), then the
# exporter (nbconvert and its templates) and one page
PAGE = _CLOCK + """sys.modules.setdefault("rfc3987_syntax", None)
from vpclink_runbooks.present.report import export_html
export_html(sys.argv[1], sys.argv[2])
""" + _SAY

PARTS = ("interpreter", "papermill import", "kernel start", "lib import in a kernel", "page")


def floor_notebook(workdir: Path) -> Path:
    """A notebook of the verify notebook's imports only (lib/run/kernels.py's warm-up code)."""
    import nbformat

    from vpclink_runbooks.run.kernels import _warm_up_code

    source = workdir / "floor.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_warm_up_code("50_verify"))],
                                            metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                     "display_name": "Python 3"}}), source)
    return source


def _commands(workdir: Path, page_notebook: Path | None) -> dict[str, list[str]]:
    from vpclink_runbooks.run.kernels import _warm_up_code

    source = floor_notebook(workdir)
    executed = workdir / "floor-out.ipynb"
    return {
        "floor": [PYTHON, "-c", FLOOR_CODE, str(source), str(executed)],
        "interpreter": [PYTHON, "-c", "pass"],
        "papermill import": [PYTHON, "-c", IMPORT_PAPERMILL],
        "kernel start": [PYTHON, "-c", KERNEL_START],
        "lib import in a kernel": [PYTHON, "-c", KERNEL_START, _warm_up_code("50_verify")],
        # the verify run's executed notebook when there is one (the plain measurements keep it), else the floor's
        "page": [PYTHON, "-c", PAGE, str(page_notebook or executed), str(workdir / "page.html")],
    }


def measure_floor(runs: int, workdir: Path, page_notebook: Path | None = None) -> dict:
    """The floor (whole process) and each part (process wall and inner seconds), `runs` times each, medians."""
    env = clean_env()
    commands = _commands(workdir, page_notebook)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    inner: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(runs):
        print(f"  floor and its parts, run {i + 1}/{runs}", file=sys.stderr, flush=True)
        for name, command in commands.items():  # the floor first: it writes the notebook the page may use
            result = must(timed(command, env), f"floor part {name!r}")
            walls[name].append(result["seconds"])
            said = [line for line in result["stdout"].splitlines() if line.startswith("{")]
            if said:
                inner[name].append(json.loads(said[-1])["inner"])
    return {"seconds": stats(walls["floor"]),
            "parts": {name: {"seconds": stats(walls[name]), "inner": stats(inner[name]) if inner[name] else None}
                      for name in PARTS},
            "page_notebook": str(page_notebook) if page_notebook else "the floor's executed notebook"}
