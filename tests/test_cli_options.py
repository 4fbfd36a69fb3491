"""The shared CLI options: resolved once before the resolved backend's options apply, the same
names everywhere, --json on reporting commands, hidden spellings of the previous release."""

from __future__ import annotations

import json

import pytest

from latbench import backends
from latbench.cli.options import Backend, Device, MeasureOptions, resolve_measurer

SHIPPED = "tables/cpu-torch-fp32-b1.jsonl"


def test_backend_options_follow_the_resolved_backend(monkeypatch):
    """`--backend auto` that resolves to TensorRT gets --opt-level and --workspace-mb (they used to
    be dropped because options were built from the requested name); torch gets none of them."""
    monkeypatch.setattr(backends, "resolve", lambda b, d: ("tensorrt", "cuda", "auto: TensorRT and a GPU"))
    m = resolve_measurer(MeasureOptions(backend=Backend.auto, opt_level=5, workspace_mb=64))
    assert m.name == "tensorrt" and m.config.options == {"opt_level": 5, "workspace_mb": 64}
    assert m.config.device == "cuda" and m.config.precision == "fp16" and m.config.protocol == "weights-cold"
    monkeypatch.setattr(backends, "resolve", lambda b, d: ("torch", "cuda", "auto: torch on CUDA"))
    m = resolve_measurer(MeasureOptions(backend=Backend.auto, opt_level=5, cudnn_benchmark=True))
    assert m.config.options == {"cudnn_benchmark": True}
    monkeypatch.undo()
    m = resolve_measurer(MeasureOptions(backend=Backend.auto, device=Device.cpu, opt_level=5))
    assert (m.name, m.config.device, m.config.options) == ("torch", "cpu", {})


@pytest.mark.ray
def test_ray_resolves_on_a_worker_and_checks_gpu_against_the_workers(run_cli, tmp_path):
    import ray

    try:
        code, _, err = run_cli("build-table", "--ray", "auto", "--gpu", "a100", "--grid", "smoke_grid", "--quick",
                               "--out", str(tmp_path / "t.jsonl"))
    finally:
        ray.shutdown()  # the command started a local Ray instance in this process
    assert code == 2 and "does not match the Ray workers' device" in err.strip().splitlines()[-1]


def test_old_spellings_still_work_hidden(run_cli, tmp_path):
    table = tmp_path / "t.jsonl"
    code, out, err = run_cli("build-table", "--device", "cpu", "--sample", "1", "--sample-space", "tiny", "--quick",
                             "--out", str(table), "--json")
    assert code == 0 and json.loads(out)["keys"] > 0, err
    code, out, _ = run_cli("table", "show", str(table), "--json")  # positional table
    assert code == 0 and json.loads(out)["counts"]["ok"] > 0
    code, out, _ = run_cli("build-table", "--help")
    assert "--sample-space" not in out and "--all-keys" in out
    code, _, err = run_cli("build-table", "--device", "cpu", "--space", "tiny", "--out", str(table))
    assert code == 2 and "--all-keys" in err  # --space names the space now; all its keys are --all-keys


@pytest.mark.parametrize("argv", [
    ["info"], ["arch", "show", "gpunet-0"], ["arch", "encode", "0," * 40 + "0", "--space", "tiny"],
    ["arch", "list"], ["table", "show", "--table", SHIPPED], ["predict", "gpunet-1", "--table", SHIPPED],
])
def test_reporting_commands_print_one_strict_json_object(run_cli, argv):
    code, out, err = run_cli(*argv, "--json")
    assert code == 0, err
    json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))


def test_choices_and_ranges_are_checked_by_the_parser(run_cli):
    for argv, shown in ((["predict", "gpunet-1", "--missing", "guess"], "'guess' is not one of"),
                        (["build-table", "--threads", "-4"], "'--threads'"),
                        (["build-table", "--opt-level", "9"], "'--opt-level'"),
                        (["sample", "--table", SHIPPED, "--n", "0"], "'--n'"),
                        (["validate", "--table", SHIPPED, "--seed", "-1"], "'--seed'")):
        code, _, err = run_cli(*argv)
        assert code == 2 and shown in err and len(err.strip().splitlines()) == 1, (argv, err)
