"""Console helpers shared by the commands: a rich console that does not wrap when piped."""

from __future__ import annotations

import sys

from rich.console import Console


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Piped output keeps full rows rather than wrapping at rich's default of 80 columns.
    return Console(file=stream, width=None if stream.isatty() else 200, highlight=False)


def millions(n: float) -> str:
    return f"{n / 1e6:.2f} M"


def giga(n: float) -> str:
    return f"{n / 1e9:.2f} G"
