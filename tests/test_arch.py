"""Architectures: the shipped GPUNets expand to the released layer sequences; formats agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latbench import load_arch
from latbench.arch_io import arch_from_obj, arch_to_json, arch_to_nvidia
from latbench.errors import ArchError

DATA = Path(__file__).parent / "data"

# Per stage: (stage, kind, layers, in->out channels, first stride, input size -> output size)
RELEASED = {
    "gpunet-0": [(0, "head", 1, 3, 32, 2, 320, 160), (1, "conv", 2, 32, 32, 1, 160, 160),
                 (2, "fused_irb", 2, 32, 32, 2, 160, 79), (3, "fused_irb", 3, 32, 64, 2, 79, 39),
                 (4, "irb", 3, 64, 256, 2, 39, 20), (6, "irb", 2, 256, 704, 2, 20, 10),
                 (7, "tail", 1, 704, 1280, 1, 10, 1)],
    "gpunet-1": [(0, "head", 1, 3, 24, 2, 288, 144), (1, "conv", 1, 24, 24, 1, 144, 144),
                 (2, "fused_irb", 2, 24, 64, 2, 144, 71), (3, "fused_irb", 2, 64, 96, 2, 71, 35),
                 (4, "irb", 1, 96, 160, 2, 35, 18), (5, "irb", 4, 160, 288, 1, 18, 18),
                 (6, "irb", 4, 288, 448, 2, 18, 9), (7, "tail", 1, 448, 1280, 1, 9, 1)],
    "gpunet-2": [(0, "head", 1, 3, 32, 2, 384, 192), (1, "conv", 3, 32, 32, 1, 192, 192),
                 (2, "fused_irb", 1, 32, 32, 2, 192, 94), (3, "fused_irb", 3, 32, 112, 2, 94, 46),
                 (4, "irb", 6, 112, 144, 2, 46, 23), (5, "irb", 4, 144, 160, 1, 23, 23),
                 (6, "irb", 8, 160, 224, 2, 23, 12), (7, "irb", 7, 224, 832, 1, 12, 12),
                 (8, "tail", 1, 832, 1280, 1, 12, 1)],
}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_shipped_gpunets_expand_to_released_layers(name):
    arch = load_arch(f"layer_configs/{name}.json")
    got = []
    for stage, blocks in arch.stages():
        first, last = blocks[0], blocks[-1]
        assert all(b.stride == 1 and b.in_channels == b.out_channels for b in blocks[1:])
        out_size = 1 if last.kind == "tail" else last.out_height
        got.append((stage, first.kind, len(blocks), first.in_channels, last.out_channels,
                    first.stride, first.height, out_size))
    assert got == RELEASED[name]


def test_gpunet1_stage4_is_one_se_irb():
    arch = load_arch("gpunet-1")
    (stage4,) = [b for s, b in arch.stages() if s == 4]
    (block,) = stage4
    assert (block.kind, block.in_channels, block.out_channels, block.stride, block.kernel,
            block.expansion, block.act, block.se) == ("irb", 96, 160, 2, 3, 2.0, "swish", True)


def test_nvidia_format_agrees_with_latbench_format():
    ours = load_arch("layer_configs/gpunet-1.json")
    nvidia = load_arch(DATA / "gpunet-1.nvidia.json")
    assert nvidia.blocks == ours.blocks and nvidia.resolution == ours.resolution
    assert nvidia.stage_of == ours.stage_of
    assert nvidia.staged is not None  # uniform stages are recovered


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_writers_round_trip(name):
    arch = load_arch(name)
    assert arch_from_obj(json.loads(json.dumps(arch_to_json(arch)))).blocks == arch.blocks
    assert arch_from_obj(arch_to_nvidia(arch)).blocks == arch.blocks


def test_nonuniform_nvidia_stage_has_no_stagewise_form():
    layers = arch_to_nvidia(load_arch("gpunet-1"))
    layers[9]["expansion"] = 3.82  # second IRB of stage 5 differs, as in released P0/P1 configs
    arch = arch_from_obj(layers)
    assert arch.staged is None and arch.blocks[8].expansion == 3.82
    assert isinstance(arch_to_json(arch), list)


@pytest.mark.parametrize("mutate, problem", [
    (lambda o: o.pop("tail"), "missing field 'tail'"),
    (lambda o: o["stages"][2].update(act="mish"), "unknown activation"),
    (lambda o: o["stages"][2].update(block="bottleneck"), "unknown block"),
    (lambda o: o["stages"][1].update(filters=-3), "positive integer"),
    (lambda o: o["stages"][1].update(layers=-1), r"layers must be an integer in \[0, 256\]"),
    (lambda o: o["stages"][1].update(colour="red"), "unknown field 'colour'"),
    (lambda o: o.update(resolution="288"), "must be an integer"),
    (lambda o: o.update(resolution=0), "resolution must be a positive integer"),
    (lambda o: o["stages"][1].update(kernel=5, stride=2, filters=8) or o.update(resolution=16), "too small"),
])
def test_latbench_format_errors_name_the_field(mutate, problem):
    obj = arch_to_json(load_arch("gpunet-1"))
    mutate(obj)
    with pytest.raises(ArchError, match=problem):
        arch_from_obj(obj, "net.json")


@pytest.mark.parametrize("mutate, problem", [
    (lambda l: l[3].update(layer_type="dense"), "unknown layer_type 'dense'"),
    (lambda l: l[3].update(num_in_channels=25), "does not chain"),
    (lambda l: l[0].update(distill=True), "distilled"),
    (lambda l: l[4].pop("kernel_size"), "missing field 'kernel_size'"),
    (lambda l: l[4].update(act="elu"), "unknown activation"),
])
def test_nvidia_format_errors(mutate, problem):
    layers = json.loads((DATA / "gpunet-1.nvidia.json").read_text())
    mutate(layers)
    with pytest.raises(ArchError, match=problem):
        arch_from_obj(layers, "nv.json")
