"""Shared fixtures and the gpu / tensorrt / ray markers, which skip themselves with a reason."""

from __future__ import annotations

import importlib.util

import pytest


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def has_module(name: str) -> bool:
    """Whether `name` can be found; a finder that refuses it (ImportError) means no."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def pytest_collection_modifyitems(config, items):
    has_cuda = _cuda()
    has_trt = has_module("tensorrt")
    has_ray = has_module("ray")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU visible to torch"))
        if "tensorrt" in item.keywords and not (has_trt and has_cuda):
            item.add_marker(pytest.mark.skip(reason="needs TensorRT and an NVIDIA GPU"))
        if "ray" in item.keywords and not has_ray:
            item.add_marker(pytest.mark.skip(reason="needs ray (pip install latbench[ray])"))


@pytest.fixture
def run_cli(capsys):
    """Run the latbench CLI in-process; returns (exit code, stdout, stderr)."""
    from latbench.cli import main

    def run(*argv: str):
        try:
            main(list(argv))
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
