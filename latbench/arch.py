"""Whole networks: a stage-wise description (`StagedArch`) and its expansion (`Arch`).

`Arch` is what everything downstream consumes: the input resolution and the ordered block specs,
each with its input shape. `StagedArch` is the compact form of architecture files and of space
encodings: a stem, stages and a classifier, each given as `BlockArgs` (a block apart from its
input). The first layer of a stage carries the stage's stride and channel change, the others are
stride 1, out -> out, with the same settings (gpunet.md). A stage may have zero layers and still
keep its settings, so encodings round-trip exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

from latbench.blocks import KINDS, BlockArgs, BlockSpec
from latbench.blocks import MAX_SIZE as MAX_RESOLUTION
from latbench.errors import ArchError, SpecError

#: Layers of one stage, and blocks of one network, that latbench accepts: far beyond published
#: CNNs (GPUNet's space allows 15 a stage, about 60 blocks), far below what exhausts memory.
MAX_LAYERS = 256
MAX_BLOCKS = 4096


def HeadSpec(filters: int, kernel: int = 3, stride: int = 2, act: str = "swish") -> BlockArgs:  # noqa: N802
    """The stem of GPUNet (stage 0): in_channels -> filters, kernel x kernel, stride."""
    return BlockArgs(kind="head", out_channels=filters, kernel=kernel, stride=stride, act=act)


def TailSpec(filters: int = 1280, classes: int = 1000, act: str = "relu") -> BlockArgs:  # noqa: N802
    """GPUNet's classifier: 1x1 conv to `filters`, BN, activation, pool, dropout, linear."""
    return BlockArgs(kind="tail", out_channels=filters, classes=classes, act=act, kernel=1)


@dataclass(frozen=True)
class StageSpec:
    """A run of `layers` blocks like `block`; only the first changes channels and strides."""

    stage: int
    layers: int
    block: BlockArgs

    @classmethod
    def of(cls, stage: int, kind: str, filters: int, layers: int, **args) -> "StageSpec":
        """A stage from its kind, width and depth, and any other BlockArgs field."""
        return cls(stage, layers, BlockArgs(kind=kind, out_channels=filters, **args))

    @property
    def filters(self) -> int:
        return self.block.out_channels


@dataclass(frozen=True)
class Arch:
    """A network as the ordered list of its blocks.

    resolution: input height = width in pixels. blocks: stem first, classifier last, each with
    its input shape. stage_of: stage number of each block (stem 0, classifier after the last
    stage). staged: the stage-wise description when the network has one (not part of equality:
    two archs are equal when their blocks are).
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
    """Raise ArchError unless blocks run stem -> ... -> classifier with matching shapes."""
    label = name or "arch"
    _check_resolution(resolution, label)
    role = lambda b: KINDS[b.kind].role  # noqa: E731
    if len(blocks) < 2 or role(blocks[0]) != "stem" or role(blocks[-1]) != "classifier":
        raise ArchError(f"{label}: a network needs a stem (head) first and a classifier (tail) last")
    if (blocks[0].height, blocks[0].width) != (resolution, resolution):
        raise ArchError(f"{label}: the head's input must be {resolution}x{resolution}")
    for i, (prev, block) in enumerate(zip(blocks, blocks[1:]), start=1):
        where = f"{label}: block {i} ({block.kind})"
        if role(block) == "stem" or (role(block) == "classifier" and i != len(blocks) - 1):
            raise ArchError(f"{where}: the stem and the classifier may appear only first and last")
        if block.in_channels != prev.out_channels:
            raise ArchError(
                f"{where}: in_channels {block.in_channels} does not chain with the previous "
                f"block's out_channels {prev.out_channels}")
        if (block.height, block.width) != (prev.out_height, prev.out_width):
            raise ArchError(
                f"{where}: input {block.height}x{block.width} does not match the previous "
                f"block's output {prev.out_height}x{prev.out_width}")


@dataclass(frozen=True)
class StagedArch:
    """The stage-wise description of a network (architecture files and space encodings)."""

    resolution: int
    head: BlockArgs
    stages: tuple[StageSpec, ...]
    tail: BlockArgs
    in_channels: int = 3
    name: str = ""

    def expand(self, source: str | None = None) -> Arch:
        """Unroll stages into blocks with their input shapes; ArchError names `source` (default:
        the network's name) and the stage at fault."""
        label = source or self.name or "arch"
        size, channels = self.resolution, self.in_channels
        blocks, stage_of = [], []

        def add(stage: int, where: str, args: BlockArgs) -> None:
            nonlocal size, channels
            try:
                block = BlockSpec.at(args, channels, size, size)
            except SpecError as err:
                raise ArchError(f"{label}: {where}: {err}") from None
            blocks.append(block)
            stage_of.append(stage)
            size, channels = block.out_height, block.out_channels

        _check_resolution(self.resolution, label)
        add(0, "head", self.head)
        for st in self.stages:
            if isinstance(st.layers, bool) or not isinstance(st.layers, int) or not 0 <= st.layers <= MAX_LAYERS:
                raise ArchError(f"{label}: stage {st.stage}: layers must be an integer in [0, {MAX_LAYERS}], "
                                f"got {st.layers!r}")
            if len(blocks) + st.layers > MAX_BLOCKS:
                raise ArchError(f"{label}: more than {MAX_BLOCKS} blocks: not a network latbench handles")
            for layer in range(st.layers):
                args = st.block if layer == 0 else replace(st.block, stride=1)
                add(st.stage, f"stage {st.stage} layer {layer + 1}", args)
        last = max([0] + [st.stage for st in self.stages]) + 1
        add(last, "tail", self.tail)
        return Arch(self.resolution, tuple(blocks), tuple(stage_of), self.name, self)


def stage_args(block: BlockSpec) -> BlockArgs:
    """A placed block's args, with its residual left to the kind's rule where it follows it (so
    a stage's first and later layers compare equal)."""
    args = block.args()
    default = KINDS[block.kind].default_skip(block)
    return replace(args, skip=None if block.skip == default else block.skip)


def staged_from_blocks(arch: Arch) -> StagedArch | None:
    """Recover the stage-wise form of an expanded network, or None if a stage is not uniform.

    Uniform means: within a stage, the first layer may change channels and stride, the rest are
    stride 1, out -> out, with the first layer's other settings.
    """
    stages = []
    for stage, blocks in arch.stages()[1:-1]:
        first = stage_args(blocks[0])
        rest = [stage_args(b) for b in blocks[1:]]
        if rest and rest[0].skip is not None:  # an explicit residual rule applies to the stage
            first = replace(first, skip=rest[0].skip)
        for b, args in zip(blocks[1:], rest):
            if args != replace(first, stride=1) or not b.in_channels == b.out_channels == first.out_channels:
                return None
        stages.append(StageSpec(stage, len(blocks), first))
    head, tail = arch.blocks[0], arch.blocks[-1]
    return StagedArch(resolution=arch.resolution, head=stage_args(head), stages=tuple(stages),
                      tail=stage_args(tail), in_channels=head.in_channels, name=arch.name)
