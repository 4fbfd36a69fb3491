"""Formatting helpers shared by the commands; the console itself lives in latbench.console."""

from __future__ import annotations

from latbench.console import console

__all__ = ["console", "giga", "millions"]


def millions(n: float) -> str:
    return f"{n / 1e6:.2f} M"


def giga(n: float) -> str:
    return f"{n / 1e9:.2f} G"
