"""Block specs: the frozen, validated unit that is built, timed, stored and predicted.

A `BlockSpec` is one physical layer of a GPUNet-style network together with its input shape.
Its canonical key (`spec.key`) is the row key of every latency table, e.g.::

    head-i3-o32-h320-w320-k3-s2-swish
    conv-i32-o32-h160-w160-k3-s1-relu
    fused_irb-i32-o64-h79-w79-k3-s2-e5-relu-se0
    irb-i256-o704-h20-w20-k3-s2-e5-relu-se1
    tail-i704-o1280-h10-w10-k1-s1-relu-c1000

`BlockSpec.from_key` is strict: tokens must come in this order, numbers must be written
canonically (``e4`` not ``e4.0``), and anything unknown is an error. Batch size and precision
are not part of the key: they belong to the table the key lives in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from latbench import cost
from latbench.errors import SpecError

KINDS = ("head", "conv", "fused_irb", "irb", "tail")
#: Activations of the GPUNet space (relu, swish) and of the factor studies.
ACTIVATIONS = ("relu", "swish", "hswish", "sigmoid", "tanh", "prelu", "gelu")
_EXPANDING = ("fused_irb", "irb")
# Upper bounds on a block's integer fields (pixels, channels): generous for any CNN.
MAX_SIZE = 8192
_LIMITS = {"in_channels": 1 << 16, "out_channels": 1 << 16, "height": MAX_SIZE, "width": MAX_SIZE,
           "kernel": 31}
_INT = re.compile(r"[1-9][0-9]*")
_NUM = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def format_number(x: float) -> str:
    """Canonical text of a positive number: integers without a decimal point, else shortest repr."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


@dataclass(frozen=True)
class BlockSpec:
    """One block with its input shape. Sizes are in elements (channels, pixels), not bytes.

    kind: head | conv | fused_irb | irb | tail.
    in_channels, out_channels: channels entering and leaving the block (tail: conv width).
    height, width: input feature-map size in pixels.
    kernel, stride: of the block's spatial convolution (depthwise for irb; 1 for tail).
    expansion: hidden = make_divisible(in_channels * expansion); irb and fused_irb only.
    se: squeeze-excitation on the hidden tensor; irb and fused_irb only.
    act: activation after every conv but the projection (relu, swish, hswish, sigmoid, tanh,
        prelu, gelu).
    classes: logits of the tail's linear layer; tail only.
    """

    kind: str
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel: int = 3
    stride: int = 1
    expansion: float = 1.0
    se: bool = False
    act: str = "relu"
    classes: int = 0

    def __post_init__(self):
        if isinstance(self.expansion, bool) or not isinstance(self.expansion, (int, float)):
            raise SpecError(f"{self.kind}: expansion must be a number, got {self.expansion!r}")
        if not isinstance(self.se, bool) and self.se not in (0, 1):
            raise SpecError(f"{self.kind}: se must be true or false, got {self.se!r}")
        object.__setattr__(self, "expansion", float(self.expansion))
        object.__setattr__(self, "se", bool(self.se))
        self._validate()

    def _validate(self) -> None:
        name = self.kind if isinstance(self.kind, str) else repr(self.kind)
        if self.kind not in KINDS:
            raise SpecError(f"unknown block kind {name!r}; expected one of {', '.join(KINDS)}")
        if self.act not in ACTIVATIONS:
            raise SpecError(
                f"{name}: unknown activation {self.act!r}; expected one of {', '.join(ACTIVATIONS)}"
            )
        for field in ("in_channels", "out_channels", "height", "width", "kernel", "stride"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"{name}: {field} must be a positive integer, got {value!r}")
            limit = _LIMITS.get(field)  # stride has its own rule below
            if limit is not None and value > limit:
                # Far beyond any CNN block; a typo that would otherwise surface as an
                # out-of-memory crash when the block is built.
                raise SpecError(f"{name}: {field} = {value} exceeds the supported maximum {limit}")
        if self.kernel % 2 == 0:
            raise SpecError(f"{name}: kernel must be odd, got {self.kernel}")
        if self.stride > 2:
            raise SpecError(f"{name}: stride must be 1 or 2, got {self.stride}")
        if self.kind in _EXPANDING:
            if not self.expansion > 0:
                raise SpecError(f"{name}: expansion must be positive, got {self.expansion}")
        elif self.expansion != 1.0 or self.se:
            raise SpecError(f"{name}: expansion and se apply to irb and fused_irb only")
        if self.kind == "tail":
            if self.kernel != 1 or self.stride != 1:
                raise SpecError("tail: kernel and stride are fixed at 1")
            if isinstance(self.classes, bool) or not isinstance(self.classes, int) or self.classes < 1:
                raise SpecError(f"tail: classes must be a positive integer, got {self.classes!r}")
        elif self.classes != 0:
            raise SpecError(f"{name}: classes applies to the tail only")
        if self.out_height < 1 or self.out_width < 1:
            raise SpecError(
                f"{name}: input {self.height}x{self.width} is too small for kernel {self.kernel} "
                f"stride {self.stride} (padding {self.padding}): the output would be empty"
            )

    # -- shape -------------------------------------------------------------------------------
    @property
    def padding(self) -> int:
        """Padding of the spatial convolution, by the released builder's rules."""
        return cost.block_padding(self.kind, self.kernel, self.stride)

    @property
    def out_height(self) -> int:
        return 1 if self.kind == "tail" else cost.conv_out(
            self.height, self.kernel, self.stride, self.padding
        )

    @property
    def out_width(self) -> int:
        return 1 if self.kind == "tail" else cost.conv_out(
            self.width, self.kernel, self.stride, self.padding
        )

    @property
    def residual(self) -> bool:
        """Released rule: (Fused-)IRB adds its input iff stride 1 and in == out; others never."""
        return (
            self.kind in _EXPANDING and self.stride == 1 and self.in_channels == self.out_channels
        )

    @property
    def hidden(self) -> int:
        """Width after expansion (irb, fused_irb); the conv width for the other kinds."""
        return int(self._costs["hidden"])

    @property
    def se_channels(self) -> int:
        """Squeeze width of the SE module (0 without SE)."""
        return cost.se_channels(self.hidden, self.expansion) if self.se else 0

    # -- cost --------------------------------------------------------------------------------
    @cached_property
    def _costs(self) -> dict:
        return cost.block_costs(
            self.kind, self.in_channels, self.out_channels, self.height, self.width,
            self.kernel, self.stride, self.expansion, int(self.se), int(self.act == "prelu"),
            self.classes,
        )

    @property
    def macs(self) -> int:
        """Multiply-accumulates of convolutions and linear layers, batch 1."""
        return int(self._costs["macs"])

    @property
    def flops(self) -> int:
        """2 x MACs, batch 1."""
        return 2 * self.macs

    @property
    def params(self) -> int:
        """Parameters of the trainable module (with BatchNorm)."""
        return int(self._costs["params"])

    @property
    def folded_params(self) -> int:
        """Inference weights with BatchNorm folded into conv biases."""
        return int(self._costs["folded_params"])

    def bytes_moved(self, elem_bytes: int = 2) -> int:
        """Unfused memory traffic in bytes at batch 1 (see `latbench.cost.bytes_moved`)."""
        return int(cost.bytes_moved(self._costs, elem_bytes))

    # -- identity ----------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """The canonical string key (see module docstring)."""
        tokens = [
            self.kind, f"i{self.in_channels}", f"o{self.out_channels}",
            f"h{self.height}", f"w{self.width}", f"k{self.kernel}", f"s{self.stride}",
        ]
        if self.kind in _EXPANDING:
            tokens.append(f"e{format_number(self.expansion)}")
        tokens.append(self.act)
        if self.kind in _EXPANDING:
            tokens.append(f"se{int(self.se)}")
        if self.kind == "tail":
            tokens.append(f"c{self.classes}")
        return "-".join(tokens)

    @classmethod
    def from_key(cls, key: str) -> "BlockSpec":
        """Parse a canonical key; any deviation from the canonical form is a SpecError."""
        return parse_key(key)

    def __str__(self) -> str:
        return self.key


def _take(tokens: list[str], prefix: str, key: str, pattern=_INT) -> str:
    if not tokens:
        raise SpecError(f"key {key!r}: ends early, expected a '{prefix}' token")
    token = tokens.pop(0)
    if not token.startswith(prefix) or not pattern.fullmatch(token[len(prefix):]):
        raise SpecError(f"key {key!r}: unexpected token {token!r}, expected '{prefix}<number>'")
    return token[len(prefix):]


def parse_key(key: str) -> BlockSpec:
    """Strict parser of `BlockSpec.key`: round-trips exactly, rejects everything else."""
    if not isinstance(key, str) or not key:
        raise SpecError(f"key {key!r}: not a block key")
    tokens = key.split("-")
    kind = tokens.pop(0)
    if kind not in KINDS:
        raise SpecError(f"key {key!r}: unknown block kind {kind!r}; expected one of {', '.join(KINDS)}")
    fields = {
        name: int(_take(tokens, prefix, key))
        for name, prefix in (
            ("in_channels", "i"), ("out_channels", "o"), ("height", "h"), ("width", "w"),
            ("kernel", "k"), ("stride", "s"),
        )
    }
    if kind in _EXPANDING:
        fields["expansion"] = float(_take(tokens, "e", key, _NUM))
    if not tokens:
        raise SpecError(f"key {key!r}: ends early, expected an activation")
    fields["act"] = tokens.pop(0)
    if kind in _EXPANDING:
        if not tokens or tokens[0] not in ("se0", "se1"):
            found = tokens[0] if tokens else "the end"
            raise SpecError(f"key {key!r}: expected 'se0' or 'se1', found {found!r}")
        fields["se"] = tokens.pop(0) == "se1"
    if kind == "tail":
        fields["classes"] = int(_take(tokens, "c", key))
    if tokens:
        raise SpecError(f"key {key!r}: unknown trailing token(s) {'-'.join(tokens)!r}")
    spec = BlockSpec(kind=kind, **fields)
    if spec.key != key:
        raise SpecError(f"key {key!r} is not canonical; write {spec.key!r}")
    return spec
