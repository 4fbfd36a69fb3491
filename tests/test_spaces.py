"""The Once-for-All MobileNetV3 and FBNet (HW-NAS-Bench) spaces as data: encodings, the facts
they encode, their block kinds, and the commands over them (sample, build-table, search)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latbench import BlockSpec, load_space, parse_key, sample
from latbench.builders import build_block
from latbench.space import index_for

SHIPPED = "tables/cpu-torch-fp32-b1.jsonl"


@pytest.mark.parametrize("name, dims", [("ofa-mbv3", 46), ("fbnet", 22)])
def test_encodings_round_trip_and_the_index_reaches_exactly_the_decoded_keys(name, dims):
    space = load_space(name)
    X = sample(space, 128, seed=3)
    assert X.shape == (128, dims)
    assert all((space.encode(space.decode(x)) == x).all() for x in X)
    index = index_for(space)
    keys = {index.spec(int(i)).key for i in index.network_key_ids(X)}
    assert keys == {k for x in X for k in space.decode(x).keys}


def test_ofa_encodes_kernel_expansion_and_depth_per_block():
    space = load_space("ofa-mbv3")
    assert space.dims[0].choices == tuple(range(128, 225, 4))
    x = space.lower.copy()  # 128 px, kernel 3, expansion 3, blocks 3 and 4 absent: depth 2 everywhere
    arch = space.decode(x)
    irbs = [b for b in arch.blocks if b.kind == "irb"]
    assert len(irbs) == 10 and {(b.kernel, b.expansion) for b in irbs} == {(3, 3.0)}
    assert [b.out_channels for b in irbs][::2] == [24, 40, 80, 112, 160]
    assert arch.blocks[-1].key.endswith("-hswish-c1000-nobias") and arch.blocks[-2].out_channels == 960
    assert {b.se for b in irbs} == {0, 2} and all(b.act == "hswish" for b in irbs[4:])
    deep = space.decode(space.upper)  # 224 px, kernel 7, expansion 6, depth 4
    assert sum(b.kind == "irb" for b in deep.blocks) == 20 and deep.resolution == 224


def test_ofa_depth_is_one_position_per_unit_drawn_uniformly():
    """Depth 2, 3, 4 keep a prefix of the unit's blocks and are drawn equally often (two present/
    absent positions per unit drew depth 3 twice as often)."""
    space = load_space("ofa-mbv3")
    depth = space.dim_index("unit1.depth")
    X = sample(space, 3000, seed=1)
    counts = np.bincount(X[:, depth], minlength=3)
    assert counts.min() > 900, counts
    for d in range(3):
        x = space.lower.copy()
        x[depth] = d
        x[space.dim_index("stage5.kernel")] = 2  # block 4's own kernel: present at depth 4 only
        irbs = [b for b in space.decode(x).blocks if b.kind == "irb" and b.out_channels == 24]
        assert len(irbs) == 2 + d and [b.kernel for b in irbs] == [3] * min(2 + d, 3) + [7] * (d == 2)
        assert (space.encode(space.decode(x)) == x).all()


@pytest.mark.parametrize("edit, fragment", [
    (lambda d: d["joint"][0]["choices"].append({"stage4.layers": 1}), "each set the same stage fields"),
    (lambda d: d["joint"][1].update(choices=d["joint"][0]["choices"]), "stage4.layers is set by"),
    (lambda d: [c.update({"stage99.layers": 0}) for c in d["joint"][0]["choices"]], "not a field of a stage"),
    (lambda d: d["stages"][3].update(layers=[0, 1]), "set by the joint position 'unit1.depth'"),
    (lambda d: d["joint"][0].update(name="stage2.kernel"), "the name of a stage field"),
])
def test_a_joint_position_is_checked_where_the_file_gives_it(tmp_path, edit, fragment):
    from latbench.errors import SpaceError
    from latbench.resources import config_dir

    doc = json.loads((config_dir() / "ofa_mbv3_space.json").read_text())
    edit(doc)
    path = tmp_path / "space.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SpaceError, match=fragment.replace("(", r"\(")):
        load_space(path)


def test_fbnet_encoding_is_hw_nas_benchs_list_of_block_indices():
    space = load_space("fbnet")
    assert all(d.size == 9 for d in space.dims)
    all_k3_e1 = space.decode([0] * 22)
    assert len(all_k3_e1.blocks) == 24 and all_k3_e1.blocks[1].key == "irb-i16-o16-h112-w112-k3-s1-e1-relu-se0"
    skips = space.decode([8] * 22)  # identity where the shape is kept, a 1x1 conv where it changes
    assert [b.key for b in skips.blocks if b.kind == "conv"] == [
        "conv-i16-o24-h112-w112-k1-s2-relu", "conv-i24-o32-h56-w56-k1-s2-relu", "conv-i32-o64-h28-w28-k1-s2-relu",
        "conv-i64-o112-h14-w14-k1-s1-relu", "conv-i112-o184-h14-w14-k1-s2-relu", "conv-i184-o352-h7-w7-k1-s1-relu"]
    assert len(skips.blocks) == 8  # stem, six convs, the 1984-wide classifier
    g2 = space.decode([1] + [0] * 21).blocks[1]
    assert g2.key == "shuffle_irb-i16-o16-h112-w112-k3-s1-e1-relu-g2" and g2.residual
    assert index_for(space).n_keys == 104  # 12 layer shapes x 8 conv blocks + 6 conv skips + stem + classifier


@pytest.mark.parametrize("spec", [
    BlockSpec(kind="shuffle_irb", in_channels=24, out_channels=24, height=28, width=28, kernel=5, expansion=1, groups=2),
    BlockSpec(kind="shuffle_irb", in_channels=32, out_channels=64, height=28, width=28, stride=2, expansion=6),
    BlockSpec(kind="er", in_channels=24, out_channels=48, height=28, width=28, stride=2, expansion=4, act="swish", se=1),
    BlockSpec(kind="pooltail", in_channels=96, out_channels=128, height=4, width=4, kernel=1, classes=10, act="hswish",
              bias=False),
], ids=lambda s: s.key)
def test_the_new_kinds_count_like_their_modules(spec):
    assert parse_key(spec.key) == spec
    module = build_block(spec).eval()
    assert sum(p.numel() for p in module.parameters()) == spec.params
    with torch.no_grad():
        y = module(torch.randn(2, spec.in_channels, spec.height, spec.width))
    assert tuple(y.shape[1:]) == ((spec.classes,) if "tail" in spec.kind else (spec.out_channels, spec.out_height,
                                                                                 spec.out_width))


def test_sample_build_and_search_in_each_space(run_cli, tmp_path):
    for name in ("ofa-mbv3", "fbnet"):
        pool = tmp_path / f"{name}.npz"
        code, out, err = run_cli("sample", "--table", SHIPPED, "--space", name, "--n", "256", "--out", str(pool),
                                 "--json")
        assert code == 0, err
        lat = json.loads(out)["latency_ms"]
        code, out, err = run_cli("plot", "groups", "--pool", str(pool), "--groups",
                                 f"{lat['median']:.3f}", "--out", str(tmp_path / f"{name}.png"))
        assert code == 0, err
        lo, hi = np.quantile(np.load(pool)["latency_ms"], [0.25, 0.75])
        code, out, err = run_cli("search", "--table", SHIPPED, "--space", name, "--pool", str(pool), "--latency-min",
                                 f"{lo:.4f}", "--latency-max", f"{hi:.4f}", "--budget", "2", "--n-init", "2",
                                 "--epochs", "1", "--width-mult", "0.25", "--proxy-resolution", "32",
                                 "--missing", "estimate", "--out", str(tmp_path / f"search-{name}"), "--json")
        assert code == 0, err
        summary = json.loads(out)
        assert summary["trials"] == 2 and summary["space"] == load_space(name).name and summary["top"]
    table = tmp_path / "fbnet.jsonl"
    code, out, err = run_cli("build-table", "--device", "cpu", "--space", "fbnet", "--n", "2", "--quick",
                             "--out", str(table), "--json")
    assert code == 0 and json.loads(out)["failed"] == 0, err


def _small_space(tmp_path, **changes):
    """Three IRB stages after a stem; stage 2 may be absent and has two widths."""
    doc = {"name": "small", "resolution": 16, "head": {"stride": 2, "filters": 8, "kernel": 3, "act": "relu"},
           "stages": [{"stage": 1, "block": "irb", "filters": 16, "expansion": 2, "layers": 1},
                      {"stage": 2, "block": "irb", "filters": [24, 32], "expansion": 2, "layers": [0, 1]},
                      {"stage": 3, "block": "irb", "filters": 40, "expansion": 2, "layers": "stage2.layers"}],
           "tail": {"filters": 64, "classes": 10}, "encoding": ["stage2.filters", "stage2.layers"]} | changes
    path = tmp_path / "small.json"
    path.write_text(json.dumps(doc))
    return load_space(path)


def test_the_index_is_exact_when_a_stage_takes_its_layers_from_another(tmp_path):
    """Stage 3 exists exactly where stage 2 does: the index reaches no key of a stage 3 fed by
    stage 1 (it did: 11 keys where the networks have 8)."""
    space = _small_space(tmp_path)
    X = np.array(list(np.ndindex(*space.cardinalities)))
    index = index_for(space)
    decoded = {k for x in X for k in space.decode(x).keys}
    assert {index.spec(i).key for i in range(index.n_keys)} == decoded
    assert {index.spec(int(i)).key for i in index.network_key_ids(X)} == decoded


def test_a_position_of_one_choice_is_a_fixed_value(tmp_path):
    stages = [{"stage": 1, "candidates": [{"block": "irb", "filters": 16, "expansion": 2, "layers": 1}]},
              {"stage": 2, "block": "irb", "filters": [24, 32], "expansion": 2, "layers": 1}]
    space = _small_space(tmp_path, stages=stages, encoding=["stage2.filters"])
    assert space.n_dims == 1 and space.decode([1]).blocks[1].key.startswith("irb-i8-o16-")
