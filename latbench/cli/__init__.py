"""The `latbench` command line: one typer app, one module per command group.

Every LatbenchError (bad input, missing backend, corrupt table) and every usage error becomes one
line on stderr and a non-zero exit; programming errors keep their traceback.
"""

from __future__ import annotations

import sys

import click
import typer

from latbench.errors import LatbenchError

try:  # typer >= 0.22 vendors its own copy of click
    from typer._click import exceptions as _typer_click
except ImportError:  # pragma: no cover - older typer uses click itself
    _typer_click = click.exceptions
USAGE_ERRORS = (click.UsageError, _typer_click.UsageError)
ABORTS = (click.Abort, typer.Abort)

app = typer.Typer(
    help="GPU latency tables and hardware-aware NAS after NVIDIA's GPUNet.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    # Importing the command modules attaches their commands to `app`.
    # In the order `latbench --help` lists them: inspect, measure, predict, search, draw, demo.
    from latbench.cli import info_cmd  # noqa: F401, I001
    from latbench.cli import arch_cmds  # noqa: F401
    from latbench.cli import table_cmds  # noqa: F401
    from latbench.cli import predict_cmds  # noqa: F401
    from latbench.cli import search_cmds  # noqa: F401
    from latbench.cli import plot_cmds  # noqa: F401
    from latbench.cli import demo_cmd  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        code = app(args=argv, prog_name="latbench", standalone_mode=False)
    except LatbenchError as err:
        print(f"latbench: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except USAGE_ERRORS as err:
        hint = f" (see: latbench {err.ctx.command_path.split(' ', 1)[-1]} --help)" if err.ctx else ""
        message = " ".join(err.format_message().split())
        print(f"latbench: error: {message}{hint}", file=sys.stderr)
        sys.exit(2)
    except ABORTS:
        print("latbench: aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("latbench: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
