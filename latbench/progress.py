"""Progress bars for long work (table builds, validation, search), drawn by rich on stderr.

Columns: title, bar, done/total, rate, elapsed, ETA, a caller-set status (failures, best so far)
and a caller-set description of the item in hand.
"""

from __future__ import annotations

from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from latbench.console import console


class Progress:
    """Use as a context manager; silent when `enabled` is False or there is nothing to do."""

    def __init__(self, total: int, title: str, enabled: bool = True, status: str = ""):
        self.enabled, self.total, self.title, self.status = enabled and total > 0, total, title, status

    def __enter__(self):
        if self.enabled:
            self._p = RichProgress(
                # markup off: statuses name keys and networks from users' files
                TextColumn("{task.fields[title]}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}", markup=False), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), TextColumn("{task.fields[status]}", markup=False),
                TextColumn("{task.description}", markup=False), console=console(stderr=True),
            )
            self._p.__enter__()
            self._task = self._p.add_task("", total=self.total, title=self.title,
                                          status=self.status, rate="")
        return self

    def describe(self, text: str) -> None:
        """Show what is being worked on now."""
        if self.enabled:
            self._p.update(self._task, description=text[:60])

    def advance(self, n: int = 1, status: str | None = None) -> None:
        if self.enabled:
            speed = self._p.tasks[0].speed
            fields = {"rate": f"{speed:.2f}/s" if speed else ""}
            if status is not None:
                fields["status"] = status
            self._p.update(self._task, advance=n, **fields)

    def __exit__(self, *exc):
        if self.enabled:
            self._p.__exit__(*exc)
