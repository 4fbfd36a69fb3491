"""The GPUNet space as data and its 41-integer encoding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latbench import load_arch
from latbench.arch_io import arch_from_obj, arch_to_json
from latbench.errors import ArchError, SpaceError
from latbench.space import load_space

SPACE = load_space()


def test_layout_of_gpunet_md():
    assert SPACE.n_dims == 41
    assert [d.name for d in SPACE.dims[:5]] == ["resolution", "head.filters", "head.kernel", "head.act", "stage1.layers"]
    assert [d.name for d in SPACE.dims[5:11]] == [f"stage2.{f}" for f in ("filters", "kernel", "expansion", "se", "act", "layers")]
    assert SPACE.dims[0].choices == tuple(range(224, 513, 32))
    assert SPACE.cardinalities.tolist() == [10, 2, 2, 2, 4] + [4, 2, 5, 2, 2, 8] + [5, 2, 5, 2, 2, 8] + \
        [7, 2, 5, 2, 2, 10] + [8, 2, 5, 2, 2, 16] + [10, 2, 5, 2, 2, 15] + [10, 2, 5, 2, 2, 16]
    assert (SPACE.lower == 0).all() and (SPACE.upper == SPACE.cardinalities - 1).all()


def test_ten_thousand_random_vectors_round_trip():
    X = SPACE.random(10_000, rng=7)
    for x in X:
        assert (SPACE.encode(SPACE.decode(x)) == x).all()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=41, max_size=41))
def test_any_in_bounds_vector_is_a_valid_network(raw):
    x = np.array(raw) % SPACE.cardinalities
    arch = SPACE.decode(x)
    assert arch.blocks[0].kind == "head" and arch.blocks[-1].kind == "tail"
    assert (SPACE.encode(arch) == x).all()
    again = arch_from_obj(arch_to_json(arch))  # through latbench's JSON, zero-layer stages kept
    assert (SPACE.encode(again) == x).all()


def test_stage_sharing():
    x = SPACE.random(1, rng=3)[0]
    staged = SPACE.decode_staged(x)
    s1 = staged.stages[0]
    head = staged.head
    assert (s1.filters, s1.block.kernel, s1.block.act) == (head.out_channels, head.kernel, head.act)


@pytest.mark.parametrize("vector, problem", [
    (list(range(40)), "has 41 integers, got 40"),
    ([10] + [0] * 40, r"position 0 \(resolution\) = 10 is outside 0..9"),
    ([0] * 40 + [-1], "outside"),
])
def test_bad_vectors(vector, problem):
    with pytest.raises(SpaceError, match=problem):
        SPACE.decode(vector)


def test_networks_outside_the_space_are_refused_with_the_field():
    # Released GPUNets use a swish head with ReLU stage-1 convs: the space shares one activation.
    with pytest.raises(SpaceError, match="stage1.act = relu must equal head.act = swish"):
        SPACE.encode(load_arch("gpunet-0"))
    from dataclasses import replace

    staged = SPACE.decode_staged(SPACE.random(1, rng=2)[0])
    stages = list(staged.stages)
    stages[3] = replace(stages[3], block=replace(stages[3].block, out_channels=256))
    with pytest.raises(SpaceError, match="stage4.filters = 256 is outside"):
        SPACE.encode(replace(staged, stages=tuple(stages)).expand())
    wide = replace(staged, tail=replace(staged.tail, out_channels=1280))
    with pytest.raises(SpaceError, match="tail.filters = 1280 but the gpunet space fixes it at 1792"):
        SPACE.encode(wide.expand())


def test_absent_stage_encodes_as_empty():
    x = SPACE.random(1, rng=5)[0]
    x[SPACE.dim_index("stage5.layers")] = 0
    staged = SPACE.decode_staged(x)
    from dataclasses import replace

    without = replace(staged, stages=tuple(s for s in staged.stages if s.stage != 5)).expand()
    assert without.blocks == SPACE.decode(x).blocks
    y = SPACE.encode(without)
    assert y[SPACE.dim_index("stage5.layers")] == 0 and (SPACE.decode(y).blocks == without.blocks)


def test_vector_strings_load():
    x = SPACE.random(1, rng=1)[0]
    a = load_arch(",".join(map(str, x)))
    b = load_arch(str(x.tolist()))
    assert a.blocks == b.blocks == SPACE.decode(x).blocks
    with pytest.raises(ArchError, match="outside"):
        load_arch(",".join(["99"] * 41))


def test_tiny_space_shares_the_layout():
    tiny = load_space("tiny")
    assert tiny.n_dims == 41 and tiny.tail.classes == 10
    x = tiny.random(50, rng=0)
    assert all((tiny.encode(tiny.decode(v)) == v).all() for v in x)
