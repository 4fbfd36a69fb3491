"""The arch/export/info commands, and one-line errors with exit code 2 for bad input."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from latbench.space import load_space


def test_arch_show_gpunet1(run_cli):
    code, out, err = run_cli("arch", "show", "layer_configs/gpunet-1.json")
    assert code == 0, err
    stage4 = next(line for line in out.splitlines() if line.strip().startswith("│ 4") or line.split()[:2] == ["4", "irb"])
    assert "irb" in stage4 and "96->160" in stage4 and "swish" in stage4 and "yes" in stage4
    stage5 = next(line for line in out.splitlines() if "160->288" in line)
    assert " 4 " in stage5
    assert "parameters 12.70 M" in out and "MACs" in out


def test_decode_then_encode(run_cli, tmp_path):
    x = load_space().random(1, rng=11)[0]
    vec = ",".join(map(str, x))
    code, out, _ = run_cli("arch", "decode", vec)
    assert code == 0
    f = tmp_path / "net.json"
    f.write_text(out)
    assert json.loads(out)["resolution"] in range(224, 513, 32)
    code, out, _ = run_cli("arch", "encode", str(f))
    assert code == 0 and out.strip() == vec


def test_export_cli(run_cli, tmp_path):
    out_path = tmp_path / "b.onnx"
    code, out, err = run_cli("export", "irb-i16-o16-h8-w8-k3-s1-e4-swish-se1", "--onnx", str(out_path),
                             "--precision", "fp16")
    assert code == 0, err
    assert out_path.is_file() and "max abs error" in out


@pytest.mark.parametrize("content, problem", [
    ("{not json", "malformed JSON"),
    ('{"resolution": 224, "head": {"filters": 32}, "stages": [{"block": "irb", "filters": 64, "layers": 1, '
     '"kernel": 3, "stride": 2, "expansion": 4, "act": "mish"}], "tail": {"filters": 1280}}', "unknown activation"),
    ('[{"layer_type": "data", "img_resolution": 224}, {"layer_type": "dense"}]', "unknown layer_type"),
    ('[{"layer_type": "data", "img_resolution": 224}, {"layer_type": "head", "num_in_channels": 3, '
     '"num_out_channels": 16}, {"layer_type": "conv", "num_in_channels": 8, "num_out_channels": 8, '
     '"stride": 1, "kernel_size": 3, "act": "relu"}]', "does not chain"),
    ('{"resolution": 0, "head": {"filters": 32}, "stages": [], "tail": {"filters": 64}}', "positive integer"),
    ("1,2,3", "has 41 integers, got 3"),
    (",".join(["0"] * 40 + ["16"]), "outside"),
    ("[]", "not an architecture"),
    ('{"resolution": 100000, "head": {"filters": 32}, "stages": [], "tail": {"filters": 64}}',
     "exceeds the supported maximum"),
    ('{"resolution": 224, "head": null, "stages": [], "tail": {"filters": 64}}', "head: must be a JSON object"),
    ('{"resolution": 224, "head": {"filters": 32}, "stages": [null], "tail": {"filters": 64}}',
     "stages[0]: must be a JSON object"),
])
def test_malformed_input_gives_one_line_and_exit_2(run_cli, tmp_path, content, problem):
    f = tmp_path / "bad.json"
    f.write_text(content)
    code, out, err = run_cli("arch", "show", str(f))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and problem in err and str(f) in err
    assert "Traceback" not in err + out


def test_missing_file_and_bad_option(run_cli):
    code, _, err = run_cli("arch", "show", "nope/missing.json")
    assert code == 2 and "no such file" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("arch", "show", str(pathlib.Path(__file__).parent))
    assert code == 2 and "is a folder" in err
    code, _, err = run_cli("arch", "show", "gpunet-1", "--frobnicate")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_console_script_exit_code_for_bad_input(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text("{")
    r = subprocess.run([sys.executable, "-m", "latbench", "arch", "encode", str(f)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


# -- random corruptions of valid files: a LatbenchError (one line, exit 2) or a valid network --
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from latbench import load_arch  # noqa: E402
from latbench.arch_io import arch_from_obj, arch_to_json, arch_to_nvidia  # noqa: E402
from latbench.errors import LatbenchError  # noqa: E402

JUNK = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=True),
                 st.text(max_size=6), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _paths(obj, prefix=()):
    """Every (container, key) path inside a JSON value."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from(["latbench", "nvidia"]), pick=st.integers(0, 10**6), junk=JUNK,
       action=st.sampled_from(["replace", "delete"]))
def test_random_corruptions_never_crash(which, pick, junk, action):
    arch = load_arch("gpunet-1")
    obj = json.loads(json.dumps(arch_to_json(arch) if which == "latbench" else arch_to_nvidia(arch)))
    paths = list(_paths(obj))
    path = paths[pick % len(paths)]
    parent = obj
    for p in path[:-1]:
        parent = parent[p]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = junk
    try:
        out = arch_from_obj(obj, "corrupt.json")
    except LatbenchError as err:
        assert "\n" not in str(err) and str(err)
    else:
        assert out.blocks[0].kind == "head" and out.blocks[-1].kind == "tail"


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(1, 2000))
def test_truncated_files_give_one_line(tmp_path_factory, cut):
    text = (pathlib.Path("layer_configs") / "gpunet-2.json").read_text()[:cut]
    f = tmp_path_factory.mktemp("t") / "cut.json"
    f.write_text(text)
    try:
        load_arch(str(f))
    except LatbenchError as err:
        assert "\n" not in str(err) and "cut.json" in str(err)
