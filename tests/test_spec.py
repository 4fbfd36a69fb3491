"""Block specs: validation, canonical keys and their strict parser, analytic costs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from latbench.cost import make_divisible
from latbench.errors import SpecError
from latbench.spec import ACTIVATIONS, BlockSpec, parse_key


def expanding(kind):
    return st.builds(
        BlockSpec, kind=st.just(kind), in_channels=st.integers(1, 512), out_channels=st.integers(1, 512),
        height=st.integers(8, 128), width=st.integers(8, 128), kernel=st.sampled_from([1, 3, 5, 7]),
        stride=st.sampled_from([1, 2]),
        expansion=st.one_of(st.integers(1, 8), st.sampled_from([2.5, 3.82, 7.67, 0.5])),
        se=st.booleans(), act=st.sampled_from(ACTIVATIONS))


specs = st.one_of(
    expanding("irb"), expanding("fused_irb"),
    st.builds(BlockSpec, kind=st.sampled_from(["head", "conv"]), in_channels=st.integers(1, 64),
              out_channels=st.integers(1, 256), height=st.integers(8, 512), width=st.integers(8, 512),
              kernel=st.sampled_from([1, 3, 5]), stride=st.sampled_from([1, 2]), act=st.sampled_from(ACTIVATIONS)),
    st.builds(BlockSpec, kind=st.just("tail"), in_channels=st.integers(1, 1024), out_channels=st.integers(1, 2048),
              height=st.integers(1, 16), width=st.integers(1, 16), kernel=st.just(1), stride=st.just(1),
              classes=st.integers(1, 1000)),
)


@given(specs)
def test_key_round_trips(spec):
    assert parse_key(spec.key) == spec
    assert parse_key(spec.key).key == spec.key


def test_key_examples():
    s = BlockSpec(kind="irb", in_channels=256, out_channels=704, height=20, width=20, kernel=3, stride=2, expansion=5, se=True, act="relu")
    assert s.key == "irb-i256-o704-h20-w20-k3-s2-e5-relu-se1"
    assert BlockSpec(kind="irb", in_channels=96, out_channels=96, height=7, width=7, kernel=3, stride=1, expansion=7.67).key.endswith("-e7.67-relu-se0")
    assert BlockSpec(kind="tail", in_channels=704, out_channels=1280, height=10, width=10, kernel=1, stride=1, classes=1000).key == "tail-i704-o1280-h10-w10-k1-s1-relu-c1000"


@pytest.mark.parametrize("key, problem", [
    ("irb-i64-o64-h8-w8-k3-s1-e4.0-relu-se0", "not canonical"),
    ("irb-i64-o64-h8-w8-k3-s1-e4-relu", "se0"),
    ("irb-i64-o64-h8-w8-k3-s1-e4-relu-se0-x", "trailing"),
    ("irb-i64-o64-h8-w8-k3-s1-e4-mish-se0", "activation"),
    ("bottleneck-i64-o64-h8-w8-k3-s1-relu", "unknown block kind"),
    ("conv-i64-o64-w8-h8-k3-s1-relu", "unexpected token"),
    ("conv-i064-o64-h8-w8-k3-s1-relu", "unexpected token"),
    ("conv-i64-o64-h8-w8-k4-s1-relu", "odd"),
    ("conv-i64-o64-h8-w8-k3-s3-relu", "stride"),
    ("fused_irb-i8-o8-h2-w2-k5-s2-e2-relu-se0", "too small"),
    ("", "not a block key"),
])
def test_parser_rejects(key, problem):
    with pytest.raises(SpecError, match=problem):
        parse_key(key)


@pytest.mark.parametrize("kwargs, problem", [
    (dict(kind="conv", in_channels=0, out_channels=8, height=8, width=8), "in_channels"),
    (dict(kind="conv", in_channels=8, out_channels=8, height=-1, width=8), "height"),
    (dict(kind="conv", in_channels=8, out_channels=8, height=8, width=8, expansion=2), "takes no expansion"),
    (dict(kind="irb", in_channels=8, out_channels=8, height=8, width=8, expansion=0), "expansion"),
    (dict(kind="tail", in_channels=8, out_channels=8, height=8, width=8, kernel=1), "classes"),
    (dict(kind="irb", in_channels=8, out_channels=8, height=8, width=8, act="swishy"), "activation"),
])
def test_spec_validation(kwargs, problem):
    with pytest.raises(SpecError, match=problem):
        BlockSpec(**kwargs)


def test_make_divisible_matches_released_rule():
    assert make_divisible(32 * 5) == 160
    assert make_divisible(24 * 4) == 96
    assert make_divisible(96 * 7.67) == 736
    assert make_divisible(3) == 8  # at least the divisor
    assert make_divisible(91) == 88  # 88 >= 0.9 * 91
    assert make_divisible(10.1) == 16 or make_divisible(10.1) == 8


def test_residual_rule_and_shapes():
    assert BlockSpec(kind="irb", in_channels=64, out_channels=64, height=20, width=20, kernel=3, stride=1, expansion=4).residual
    assert not BlockSpec(kind="irb", in_channels=64, out_channels=96, height=20, width=20, kernel=3, stride=1, expansion=4).residual
    assert not BlockSpec(kind="conv", in_channels=32, out_channels=32, height=20, width=20, kernel=3, stride=1).residual  # released conv has no skip
    fused = BlockSpec(kind="fused_irb", in_channels=32, out_channels=32, height=160, width=160, kernel=3, stride=2, expansion=5)
    assert (fused.padding, fused.out_height) == (0, 79)  # the released zero-padding quirk
    assert BlockSpec(kind="irb", in_channels=64, out_channels=256, height=39, width=39, kernel=3, stride=2, expansion=5).out_height == 20
    assert BlockSpec(kind="irb", in_channels=256, out_channels=704, height=20, width=20, kernel=3, stride=2, expansion=5, se=True).se_channels == 64  # about in / 4


def test_costs():
    s = BlockSpec(kind="conv", in_channels=32, out_channels=64, height=16, width=16, kernel=3, stride=1)
    assert s.macs == 32 * 64 * 9 * 16 * 16 and s.flops == 2 * s.macs
    assert s.params == 32 * 64 * 9 + 2 * 64 and s.folded_params == 32 * 64 * 9 + 64
    assert s.bytes_moved(2) == 2 * (s.folded_params + 32 * 256 + 64 * 256 + 2 * 64 * 256)
