"""papermill's own engine, telling the scheduler when a notebook's tagged cells have run (e.g. its converge).

papermill runs a notebook cell by cell through its NotebookExecutionManager, which marks each cell completed or
failed. This engine (registered with papermill as ENGINE) calls `on_tagged_cell(tag)` for every tag in TAGS of a
cell that completed without an error, while the notebook goes on with its next cells: the scheduler starts the
steps that need this one converged while its waits still poll AWS (steps/registry.py, `needs_converged`).
Without `on_tagged_cell` it is papermill's default engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from papermill.engines import NBClientEngine, papermill_engines

from vpclink_runbooks.steps.registry import CONVERGE_TAG

ENGINE = "vpclink-runbooks"
# The cell tags the engine reports.
TAGS = (CONVERGE_TAG,)


class TaggedCellEngine(NBClientEngine):
    """NBClientEngine that reports each completed cell's TAGS to `on_tagged_cell`."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str,
                                 on_tagged_cell: Callable[[str], None] | None = None, **kwargs: Any) -> Any:
        if on_tagged_cell is not None:
            complete = nb_man.cell_complete

            def cell_complete(cell: Any, cell_index: int | None = None, **kw: Any) -> None:
                complete(cell, cell_index=cell_index, **kw)
                # papermill marked it failed (cell_exception) before completing it: such a cell reports nothing
                if cell.metadata.get("papermill", {}).get("status") == nb_man.COMPLETED:
                    for tag in cell.metadata.get("tags", []):
                        if tag in TAGS:
                            on_tagged_cell(tag)

            nb_man.cell_complete = cell_complete
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)


papermill_engines.register(ENGINE, TaggedCellEngine)
