"""Whole networks: a stage-wise description (`StagedArch`) and its expansion (`Arch`).

`Arch` is what everything downstream consumes: the input resolution and the ordered block specs,
each with its input shape. `StagedArch` is the compact per-stage form of latbench's JSON files and
of the 41-integer encoding: the first layer of a stage carries the stage's stride and channel
change, the others are stride 1, out -> out, with the same settings (gpunet.md). A stage may have
zero layers and still keep its settings, so encodings round-trip exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from latbench.errors import ArchError, SpecError
from latbench.spec import MAX_SIZE as MAX_RESOLUTION, BlockSpec


@dataclass(frozen=True)
class HeadSpec:
    """Stem convolution (GPUNet stage 0): in_channels -> filters, kernel x kernel, stride."""

    filters: int
    kernel: int = 3
    stride: int = 2
    act: str = "swish"


@dataclass(frozen=True)
class StageSpec:
    """A run of `layers` identical blocks; only the first changes channels and strides."""

    stage: int
    block: str
    filters: int
    layers: int
    kernel: int = 3
    stride: int = 1
    expansion: float = 1.0
    se: bool = False
    act: str = "relu"


@dataclass(frozen=True)
class TailSpec:
    """1x1 conv to `filters`, BN, activation, global pool, dropout, linear to `classes`."""

    filters: int = 1280
    classes: int = 1000
    act: str = "relu"


@dataclass(frozen=True)
class Arch:
    """A network as the ordered list of its blocks.

    resolution: input height = width in pixels. blocks: head first, tail last, each with its
    input shape. stage_of: stage number of each block (head 0, tail after the last stage).
    staged: the stage-wise description when the network has one (not part of equality: two
    archs are equal when their blocks are).
    """

    resolution: int
    blocks: tuple[BlockSpec, ...]
    stage_of: tuple[int, ...]
    name: str = field(default="", compare=False)
    staged: "StagedArch | None" = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        check_chain(self.resolution, self.blocks, self.name)
        if len(self.stage_of) != len(self.blocks):
            raise ArchError(f"{self.name or 'arch'}: one stage number is needed per block")

    @property
    def in_channels(self) -> int:
        return self.blocks[0].in_channels

    @cached_property
    def keys(self) -> tuple[str, ...]:
        """Canonical keys of the blocks, in network order (repeats kept)."""
        return tuple(b.key for b in self.blocks)

    @property
    def macs(self) -> int:
        return sum(b.macs for b in self.blocks)

    @property
    def params(self) -> int:
        return sum(b.params for b in self.blocks)

    def stages(self) -> list[tuple[int, list[BlockSpec]]]:
        """Blocks grouped by stage number, in order."""
        groups: list[tuple[int, list[BlockSpec]]] = []
        for stage, block in zip(self.stage_of, self.blocks):
            if not groups or groups[-1][0] != stage:
                groups.append((stage, []))
            groups[-1][1].append(block)
        return groups


def _check_resolution(resolution, label: str) -> None:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ArchError(f"{label}: resolution must be a positive integer, got {resolution!r}")
    if resolution > MAX_RESOLUTION:
        raise ArchError(f"{label}: resolution {resolution} exceeds the supported maximum {MAX_RESOLUTION}")


def check_chain(resolution: int, blocks: tuple[BlockSpec, ...], name: str = "") -> None:
    """Raise ArchError unless blocks run head -> ... -> tail with matching channels and sizes."""
    label = name or "arch"
    _check_resolution(resolution, label)
    if len(blocks) < 2 or blocks[0].kind != "head" or blocks[-1].kind != "tail":
        raise ArchError(f"{label}: a network needs a head first and a tail last")
    if (blocks[0].height, blocks[0].width) != (resolution, resolution):
        raise ArchError(f"{label}: the head's input must be {resolution}x{resolution}")
    for i, (prev, block) in enumerate(zip(blocks, blocks[1:]), start=1):
        where = f"{label}: block {i} ({block.kind})"
        if block.kind == "head" or (block.kind == "tail" and i != len(blocks) - 1):
            raise ArchError(f"{where}: head and tail may appear only first and last")
        if block.in_channels != prev.out_channels:
            raise ArchError(
                f"{where}: in_channels {block.in_channels} does not chain with the previous "
                f"block's out_channels {prev.out_channels}"
            )
        if (block.height, block.width) != (prev.out_height, prev.out_width):
            raise ArchError(
                f"{where}: input {block.height}x{block.width} does not match the previous "
                f"block's output {prev.out_height}x{prev.out_width}"
            )


@dataclass(frozen=True)
class StagedArch:
    """The stage-wise description of a network (latbench's JSON and the 41-integer encoding)."""

    resolution: int
    head: HeadSpec
    stages: tuple[StageSpec, ...]
    tail: TailSpec
    in_channels: int = 3
    name: str = ""

    def expand(self, source: str | None = None) -> Arch:
        """Unroll stages into blocks with their input shapes; ArchError names `source` (default:
        the network's name) and the stage at fault."""
        label = source or self.name or "arch"
        size, channels = self.resolution, self.in_channels
        blocks, stage_of = [], []

        def add(stage: int, where: str, **kw) -> None:
            nonlocal size, channels
            try:
                block = BlockSpec(height=size, width=size, in_channels=channels, **kw)
            except SpecError as err:
                raise ArchError(f"{label}: {where}: {err}") from None
            blocks.append(block)
            stage_of.append(stage)
            size, channels = block.out_height, block.out_channels

        _check_resolution(self.resolution, label)
        h = self.head
        add(0, "head", kind="head", out_channels=h.filters, kernel=h.kernel, stride=h.stride, act=h.act)
        for st in self.stages:
            if isinstance(st.layers, bool) or not isinstance(st.layers, int) or st.layers < 0:
                raise ArchError(f"{label}: stage {st.stage}: layers must be an integer >= 0, got {st.layers!r}")
            for layer in range(st.layers):
                add(
                    st.stage, f"stage {st.stage} layer {layer + 1}", kind=st.block,
                    out_channels=st.filters, kernel=st.kernel,
                    stride=st.stride if layer == 0 else 1, expansion=st.expansion, se=st.se, act=st.act,
                )
        last = max([0] + [st.stage for st in self.stages]) + 1
        t = self.tail
        add(last, "tail", kind="tail", out_channels=t.filters, kernel=1, stride=1, act=t.act, classes=t.classes)
        return Arch(self.resolution, tuple(blocks), tuple(stage_of), self.name, self)


def staged_from_blocks(arch: Arch) -> StagedArch | None:
    """Recover the stage-wise form of an expanded network, or None if a stage is not uniform.

    Uniform means: within a stage, the first layer may change channels and stride, the rest are
    stride 1, out -> out, with the first layer's kernel, expansion, SE and activation.
    """
    head, tail = arch.blocks[0], arch.blocks[-1]
    stages = []
    for stage, blocks in arch.stages()[1:-1]:
        first = blocks[0]
        for b in blocks[1:]:
            same = (b.kind, b.kernel, b.expansion, b.se, b.act) == (
                first.kind, first.kernel, first.expansion, first.se, first.act
            )
            chained = b.in_channels == b.out_channels == first.out_channels
            if not same or b.stride != 1 or not chained:
                return None
        stages.append(
            StageSpec(
                stage=stage, block=first.kind, filters=first.out_channels, layers=len(blocks),
                kernel=first.kernel, stride=first.stride, expansion=first.expansion, se=first.se,
                act=first.act,
            )
        )
    return StagedArch(
        resolution=arch.resolution,
        head=HeadSpec(head.out_channels, head.kernel, head.stride, head.act),
        stages=tuple(stages),
        tail=TailSpec(tail.out_channels, tail.classes, tail.act),
        in_channels=head.in_channels,
        name=arch.name,
    )
