"""The rich console every layer prints through (progress bars, demo, command output).

Kept below the CLI so that library code (builds, validation, the GPU session runner) can report
progress without importing the command-line layer.
"""

from __future__ import annotations

import sys

from rich.console import Console


def console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr) that does not wrap when piped, and prints text as text.

    Markup is off: names, paths and reasons come from users' files, and "[/]" in one of them
    would otherwise be a rich markup error (or silently styled). Styles are given explicitly
    (`style=`, `rich.text.Text`), never embedded in strings.
    """
    stream = sys.stderr if stderr else sys.stdout
    # Piped output keeps full rows rather than wrapping at rich's default of 80 columns.
    return Console(file=stream, width=None if stream.isatty() else 200, highlight=False, markup=False)
