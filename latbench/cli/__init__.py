"""The `latbench` command line: one typer app, one module per command group.

Every LatbenchError (bad input, missing backend, corrupt table) and every usage error becomes one
line on stderr and a non-zero exit; programming errors keep their traceback.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading

import typer

from latbench.errors import LatbenchError

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
    from latbench.cli import session_cmd  # noqa: F401
    from latbench.cli import demo_cmd  # noqa: F401


def is_usage_error(err: BaseException) -> bool:
    """Whether `err` is the parser's usage error (unknown option, bad value, missing argument).

    typer >= 0.22 raises its vendored click's UsageError, older typer click's own; both carry
    exit code 2 and `format_message`. Recognising them by that shape keeps latbench free of a
    direct click dependency (which typer no longer brings along).
    """
    return getattr(err, "exit_code", None) == 2 and callable(getattr(err, "format_message", None))


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a run as Ctrl-C does: workers stopped, exit code 130


# Exit codes, one place (README, "Exit codes"): 2 is also LatbenchError's own exit_code.
#: Bad input or environment: one line on stderr, nothing written.
EXIT_BAD_INPUT = 2
#: build-table or search finished, but some rows or trials failed; the table and the results are
#: valid and resumable (`--retry-failed`, `--resume`).
EXIT_SOME_FAILED = 3
#: Interrupted (Ctrl-C or SIGTERM): what was finished is kept.
EXIT_INTERRUPTED = 130
#: The reader of stdout went away (`| head`): 128 + SIGPIPE, as the shell reports a process that
#: SIGPIPE ended.
EXIT_BROKEN_PIPE = 141


class OutputError(Exception):
    """Writing to stdout failed (a closed pipe, a full disk); carries the OSError."""

    def __init__(self, err: OSError):
        super().__init__(str(err))
        self.err = err


class _Guarded:
    """stdout whose write errors become OutputError, told apart from every other OSError."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except OSError as err:
            raise OutputError(err) from None

    def flush(self):
        try:
            return self._stream.flush()
        except OSError as err:
            raise OutputError(err) from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _output_failed(err: OSError) -> None:
    """Report a failed write to stdout (nothing for a reader that went away) and make sure the
    interpreter's last flush does not fail again."""
    if sys.__stdout__ is not None and sys.stdout is sys.__stdout__:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno())
        except OSError:
            pass
    if err.errno == errno.EPIPE:
        sys.exit(EXIT_BROKEN_PIPE)
    print(f"latbench: error: cannot write the output: {err.strerror or err}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


#: Longest error message printed whole, characters: messages quote users' values, and a value
#: of 20,000 characters would bury the problem and its fix (which end the message).
MAX_MESSAGE = 600


def _short(message: str) -> str:
    """`message` with its middle elided past MAX_MESSAGE characters, on one line."""
    message = " ".join(message.split("\n"))
    if len(message) <= MAX_MESSAGE:
        return message
    keep = MAX_MESSAGE // 2
    return f"{message[:keep]} [... {len(message) - 2 * keep:,} characters ...] {message[-keep:]}"


def main(argv: list[str] | None = None) -> None:
    _register()
    # A stream that cannot encode a name (PYTHONIOENCODING=ascii) shows it escaped, not a traceback.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    stdout = sys.stdout
    sys.stdout = _Guarded(stdout)
    try:
        code = app(args=argv, prog_name="latbench", standalone_mode=False)
        sys.stdout.flush()
        if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into this code, silently (0.29)
            print("latbench: interrupted", file=sys.stderr)
    except OutputError as failed:
        sys.stdout = stdout
        _output_failed(failed.err)
    except LatbenchError as err:
        print(f"latbench: error: {_short(str(err))}", file=sys.stderr)
        sys.exit(err.exit_code)
    except typer.Abort as abort:
        # click turns an EOFError anywhere into Abort: latbench never prompts, so that is a bug
        # (keep its traceback), not a user's Ctrl-D.
        if isinstance(abort.__context__, EOFError):
            raise abort.__context__ from None
        print("latbench: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except MemoryError as err:  # numpy's _ArrayMemoryError included
        print(f"latbench: error: out of memory ({_short(str(err) or 'MemoryError')}); ask for less "
              "(a smaller --n, --batch or resolution)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as err:  # noqa: BLE001 - usage errors are re-raised unless recognised
        if not is_usage_error(err):
            raise
        ctx = getattr(err, "ctx", None)
        hint = f" (see: latbench {ctx.command_path.split(' ', 1)[-1]} --help)" if ctx else ""
        message = " ".join(err.format_message().split())
        print(f"latbench: error: {_short(message)}{hint}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        print("latbench: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        sys.stdout = stdout
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(code if isinstance(code, int) else 0)
