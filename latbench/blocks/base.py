"""What every block kind shares: the block's fields, its key grammar, the kind interface.

A block is described twice over: `BlockArgs` is a block apart from its input (what a stage of an
architecture repeats, what a file states), and `BlockSpec` is a block with its input shape (what
is built, timed, stored and predicted). Its canonical key is the row key of every latency table::

    <kind>-i<in>-o<out>-h<height>-w<width>-k<kernel>-s<stride>[-<kind's tokens>]

where the kind's tokens come in the order the kind lists them (`BlockKind.tokens`):

    e<expansion>   expansion ratio, canonical number (e4, e7.67)
    <act>          activation (ACTIVATIONS)
    se<variant>    squeeze-excitation variant (latbench.blocks.se: se0 none, se1, se2)
    c<classes>     logits of a classifier
    skip|noskip    only where it differs from the kind's residual rule
    g<groups>      only where groups != 1
    nobias         only where a classifier's 1x1 convolution has no bias

Parsing is strict: tokens in this order, numbers written canonically, anything unknown an error.
Batch size and precision are not part of the key: they belong to the table the key lives in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import cached_property, lru_cache
from typing import ClassVar

import numpy as np

from latbench.blocks import se as se_variants
from latbench.cost import bytes_moved, conv_out, symmetric_padding
from latbench.errors import SpecError

#: Activations, in a fixed order (their index is stored in feature matrices: append only).
ACTIVATIONS = ("relu", "swish", "hswish", "sigmoid", "tanh", "prelu", "gelu", "relu6")
#: Upper bounds on a block's integer fields (pixels, channels, taps): generous for any CNN.
MAX_SIZE = 8192
LIMITS = {"in_channels": 1 << 16, "out_channels": 1 << 16, "height": MAX_SIZE, "width": MAX_SIZE,
          "kernel": 31, "stride": 2, "groups": 64, "classes": 1 << 20}
SHAPE = ("in_channels", "height", "width")
#: Expansion ratios latbench accepts: far beyond published spaces (0.5-8) both ways.
MIN_EXPANSION, MAX_EXPANSION = 0.0625, 64.0
_INT = re.compile(r"[1-9][0-9]*")
_NUM = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def format_number(x: float) -> str:
    """Canonical text of a positive number: integers without a decimal point, else shortest repr."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def _positive_int(value, name: str, label: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{label}: {name} must be a positive integer, got {value!r}")
    limit = LIMITS.get(name)
    if limit is not None and value > limit:
        # Far beyond any CNN block; a typo that would otherwise surface as an out-of-memory crash
        # when the block is built.
        raise SpecError(f"{label}: {name} = {value} exceeds the supported maximum {limit}")


@dataclass(frozen=True, kw_only=True)
class BlockArgs:
    """A block apart from its input. Sizes are in elements (channels), not bytes.

    kind: a registered block kind (latbench.blocks.KINDS).
    out_channels: channels leaving the block (classifiers: their conv width).
    kernel, stride: of the block's spatial convolution (stride 2 halves the map).
    expansion: hidden width = make_divisible(in_channels * expansion) in expanding kinds.
    se: squeeze-excitation variant (0 none; see latbench.blocks.se); True and False mean 1 and 0.
    act: activation after every conv but the projection (ACTIVATIONS).
    classes: logits of a classifier's linear layer.
    skip: residual connection: None follows the kind's rule (a residual where stride is 1 and the
        channels are kept, for kinds that have one), False drops it, True asks for one.
    groups: groups of the 1x1 convolutions (grouped kinds only).
    bias: whether a pooled classifier's 1x1 convolution has a bias (kinds with a "bias" token).
    """

    kind: str
    out_channels: int
    kernel: int = 3
    stride: int = 1
    expansion: float = 1.0
    se: int = 0
    act: str = "relu"
    classes: int = 0
    skip: bool | None = None
    groups: int = 1
    bias: bool = True

    def __post_init__(self):
        kind = kind_of(self.kind)
        if isinstance(self.expansion, bool) or not isinstance(self.expansion, (int, float)):
            raise SpecError(f"{self.kind}: expansion must be a number, got {self.expansion!r}")
        object.__setattr__(self, "expansion", float(self.expansion))
        if isinstance(self.se, bool):
            object.__setattr__(self, "se", int(self.se))
        if self.skip is not None and not isinstance(self.skip, bool):
            raise SpecError(f"{self.kind}: skip must be true, false or absent, got {self.skip!r}")
        kind.check_args(self)

    def args(self) -> "BlockArgs":
        """The block apart from its input shape."""
        return BlockArgs(**{f.name: getattr(self, f.name) for f in fields(BlockArgs)})


@dataclass(frozen=True, kw_only=True)
class BlockSpec(BlockArgs):
    """A block with its input shape: height x width pixels of in_channels channels (batch 1)."""

    in_channels: int
    height: int
    width: int

    def __post_init__(self):
        super().__post_init__()
        kind = self.kind_class
        for name in SHAPE:
            _positive_int(getattr(self, name), name, self.kind)
        if self.skip is None:  # resolved, so that equal specs have equal keys
            object.__setattr__(self, "skip", kind.default_skip(self))
        kind.check_shape(self)

    @classmethod
    def at(cls, args: BlockArgs, in_channels: int, height: int, width: int) -> "BlockSpec":
        """`args` placed on an input of in_channels x height x width."""
        values = {f.name: getattr(args, f.name) for f in fields(BlockArgs)}
        return cls(**values, in_channels=in_channels, height=height, width=width)

    @property
    def kind_class(self) -> "BlockKind":
        return KINDS[self.kind]

    # -- shape -------------------------------------------------------------------------------
    @property
    def padding(self) -> int:
        return int(self.kind_class.padding(self.kernel, self.stride))

    @property
    def out_height(self) -> int:
        return int(self._costs["out_h"])

    @property
    def out_width(self) -> int:
        return int(self._costs["out_w"])

    @property
    def residual(self) -> bool:
        """Whether the block adds its input to its output."""
        return bool(self.skip)

    @property
    def hidden(self) -> int:
        """Width after expansion (expanding kinds); the conv width for the others."""
        return int(self._costs["hidden"])

    @property
    def se_channels(self) -> int:
        """Squeeze width of the SE module (0 without SE)."""
        return int(self._costs["se_channels"])

    # -- cost --------------------------------------------------------------------------------
    @cached_property
    def _costs(self) -> dict:
        try:
            with np.errstate(over="raise"):
                return self.kind_class.costs(
                    self.in_channels, self.out_channels, self.height, self.width, self.kernel, self.stride,
                    self.expansion, self.se, int(self.act == "prelu"), self.classes, int(self.skip or 0),
                    self.groups, int(self.bias))
        except (OverflowError, FloatingPointError):
            # Each field within its limit, the product beyond 64-bit counts: no block to build.
            raise SpecError(f"{self.kind}: {self.in_channels}->{self.out_channels} channels at {self.height}x"
                            f"{self.width} (kernel {self.kernel}, expansion {format_number(self.expansion)}) is "
                            "too large a block: its operation count overflows 64 bits") from None

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
        return int(bytes_moved(self._costs, elem_bytes))

    # -- identity ----------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """The canonical string key (see module docstring)."""
        head = [self.kind, f"i{self.in_channels}", f"o{self.out_channels}", f"h{self.height}",
                f"w{self.width}", f"k{self.kernel}", f"s{self.stride}"]
        return "-".join(head + self.kind_class.format_tokens(self))

    @classmethod
    def from_key(cls, key: str) -> "BlockSpec":
        """Parse a canonical key; any deviation from the canonical form is a SpecError."""
        return parse_key(key)

    def __str__(self) -> str:
        return self.key


class BlockKind:
    """One kind of block. Subclasses set the class attributes and implement `costs` and `build`;
    the registry (latbench.blocks) holds one instance per kind."""

    name: ClassVar[str]
    #: The kind's key tokens after the shape prefix, in order (module docstring).
    tokens: ClassVar[tuple[str, ...]] = ("act",)
    #: Where it may stand in a network: "stem" (first), "body", "classifier" (last).
    role: ClassVar[str] = "body"
    #: Fields a search space may vary in a stage of this kind ("filters" is out_channels).
    space_fields: ClassVar[tuple[str, ...]] = ("filters", "kernel", "act")
    #: SE variants the kind accepts (0: none).
    se_allowed: ClassVar[tuple[int, ...]] = (0,)
    #: Whether the kind can add its input to its output, and whether it does by default.
    skippable: ClassVar[bool] = False
    skip_by_default: ClassVar[bool] = True

    # -- validation ----------------------------------------------------------------------------
    def check_args(self, a: BlockArgs) -> None:
        """Refuse field values this kind does not have (SpecError naming the field)."""
        label = self.name
        if a.act not in ACTIVATIONS:
            raise SpecError(f"{label}: unknown activation {a.act!r}; expected one of {', '.join(ACTIVATIONS)}")
        for name in ("out_channels", "kernel", "stride", "groups"):
            _positive_int(getattr(a, name), name, label)
        if a.kernel % 2 == 0:
            raise SpecError(f"{label}: kernel must be odd, got {a.kernel}")
        if "e" in self.tokens:
            if not MIN_EXPANSION <= a.expansion <= MAX_EXPANSION:
                raise SpecError(f"{label}: expansion must be in [{MIN_EXPANSION}, {MAX_EXPANSION}], "
                                f"got {a.expansion}")
        elif a.expansion != 1.0:
            raise SpecError(f"{label}: takes no expansion (got {a.expansion})")
        if a.se not in self.se_allowed:
            allowed = ", ".join(str(v) for v in self.se_allowed)
            raise SpecError(f"{label}: se must be one of {allowed} ({se_variants.describe()}), got {a.se!r}")
        if "c" in self.tokens:
            _positive_int(a.classes, "classes", label)
        elif a.classes != 0:
            raise SpecError(f"{label}: classes applies to classifiers only")
        if a.groups != 1 and "g" not in self.tokens:
            raise SpecError(f"{label}: takes no groups (got {a.groups})")
        if a.skip and not self.skippable:
            raise SpecError(f"{label}: has no residual connection")
        if not isinstance(a.bias, bool) or (not a.bias and "bias" not in self.tokens):
            raise SpecError(f"{label}: bias must be true (only a pooled classifier may drop it), got {a.bias!r}")

    def check_shape(self, s: BlockSpec) -> None:
        """Refuse a block whose input shape does not fit it (SpecError)."""
        if s.out_height < 1 or s.out_width < 1:
            raise SpecError(
                f"{self.name}: input {s.height}x{s.width} is too small for kernel {s.kernel} stride "
                f"{s.stride} (padding {s.padding}): the output would be empty")
        if s.skip and not self.shape_allows_skip(s):
            raise SpecError(f"{self.name}: a residual needs stride 1 and in_channels == out_channels")

    # -- residual ------------------------------------------------------------------------------
    def shape_allows_skip(self, s) -> bool:
        return s.stride == 1 and s.in_channels == s.out_channels

    def default_skip(self, s: BlockSpec) -> bool:
        return self.skippable and self.skip_by_default and self.shape_allows_skip(s)

    # -- shape and cost (vectorised: scalars or equal-length numpy arrays) -----------------------
    def padding(self, kernel, stride):
        return symmetric_padding(kernel, stride)

    def out_size(self, size, kernel, stride):
        return conv_out(size, kernel, stride, self.padding(kernel, stride))

    def costs(self, cin, cout, h, w, kernel, stride, expansion, se, act_prelu, classes, skip, groups, bias) -> dict:
        """Element counts: out_h, out_w, hidden, se_channels, macs, params (trainable, BN
        included), folded_params (BN folded), in_elems, out_elems, internal_elems (intermediate
        tensors, each written and read once when the block runs unfused)."""
        raise NotImplementedError

    # -- torch -----------------------------------------------------------------------------------
    def build(self, spec: BlockSpec) -> list:
        """The modules of the block's body, in order (training form, with BatchNorm); the residual
        is added by the caller (latbench.blocks.layers.Block)."""
        raise NotImplementedError

    # -- key -------------------------------------------------------------------------------------
    def format_tokens(self, s: BlockSpec) -> list[str]:
        out = []
        for token in self.tokens:
            if token == "e":
                out.append(f"e{format_number(s.expansion)}")
            elif token == "act":
                out.append(s.act)
            elif token == "se":
                out.append(f"se{s.se}")
            elif token == "c":
                out.append(f"c{s.classes}")
            elif token == "skip" and s.skip != self.default_skip(s):
                out.append("skip" if s.skip else "noskip")
            elif token == "g" and s.groups != 1:
                out.append(f"g{s.groups}")
            elif token == "bias" and not s.bias:
                out.append("nobias")
        return out

    def parse_tokens(self, tokens: list[str], key: str) -> dict:
        """Fields from the kind's tokens (consumed from `tokens`); SpecError on any deviation."""
        out: dict = {}
        for token in self.tokens:
            if token == "e":
                out["expansion"] = float(_take(tokens, "e", key, _NUM))
            elif token == "act":
                if not tokens:
                    raise SpecError(f"key {key!r}: ends early, expected an activation")
                out["act"] = tokens.pop(0)
            elif token == "se":
                allowed = [f"se{v}" for v in self.se_allowed]
                if not tokens or tokens[0] not in allowed:
                    found = tokens[0] if tokens else "the end"
                    raise SpecError(f"key {key!r}: expected {' or '.join(allowed)}, found {found!r}")
                out["se"] = int(tokens.pop(0)[2:])
            elif token == "c":
                out["classes"] = int(_take(tokens, "c", key))
            elif token == "skip" and tokens and tokens[0] in ("skip", "noskip"):
                out["skip"] = tokens.pop(0) == "skip"
            elif token == "g" and tokens and tokens[0].startswith("g"):
                out["groups"] = int(_take(tokens, "g", key))
            elif token == "bias" and tokens and tokens[0] == "nobias":
                out["bias"] = tokens.pop(0) != "nobias"
        return out


def _take(tokens: list[str], prefix: str, key: str, pattern=_INT) -> str:
    if not tokens:
        raise SpecError(f"key {key!r}: ends early, expected a '{prefix}' token")
    token = tokens.pop(0)
    if not token.startswith(prefix) or not pattern.fullmatch(token[len(prefix):]):
        raise SpecError(f"key {key!r}: unexpected token {token!r}, expected '{prefix}<number>'")
    return token[len(prefix):]


def parse_key(key: str) -> BlockSpec:
    """Strict parser of `BlockSpec.key`: round-trips exactly, rejects everything else.

    Specs are immutable, so parses are cached: a table is checked key by key when it is loaded,
    and the predictor and the estimator parse the same keys again."""
    if not isinstance(key, str) or not key or len(key) > 200:
        raise SpecError(f"key {_shown(key)}: not a block key")
    return _parse_key(key)


def _shown(key) -> str:
    text = repr(key)
    return text if len(text) <= 60 else text[:57] + "..."


@lru_cache(maxsize=1 << 19)
def _parse_key(key: str) -> BlockSpec:
    tokens = key.split("-")
    name = tokens.pop(0)
    if name not in KINDS:
        raise SpecError(f"key {key!r}: unknown block kind {name!r}; expected one of {', '.join(KINDS)}")
    values = {field: int(_take(tokens, prefix, key)) for field, prefix in (
        ("in_channels", "i"), ("out_channels", "o"), ("height", "h"), ("width", "w"),
        ("kernel", "k"), ("stride", "s"))}
    values |= KINDS[name].parse_tokens(tokens, key)
    if tokens:
        raise SpecError(f"key {key!r}: unknown trailing token(s) {'-'.join(tokens)!r}")
    spec = BlockSpec(kind=name, **values)
    if spec.key != key:
        raise SpecError(f"key {key!r} is not canonical; write {spec.key!r}")
    return spec


#: The registry: kind name -> kind, in registration order (latbench.blocks registers the built-in
#: kinds; a new kind is one module and one `register` call).
KINDS: dict[str, BlockKind] = {}


def register(kind: BlockKind) -> BlockKind:
    """Add a kind to the registry (its name must be new and usable in a key)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", kind.name) or kind.name in KINDS:
        raise ValueError(f"block kind name {kind.name!r} is taken or not [a-z][a-z0-9_]*")
    KINDS[kind.name] = kind
    return kind


def kind_of(name) -> BlockKind:
    """The registered kind called `name`; SpecError listing the kinds otherwise."""
    if not isinstance(name, str) or name not in KINDS:
        shown = name if isinstance(name, str) else repr(name)
        raise SpecError(f"unknown block kind {shown!r}; expected one of {', '.join(KINDS)}")
    return KINDS[name]


def kind_index(name: str) -> int:
    """Position of a kind in the registry (a column of feature matrices)."""
    return list(KINDS).index(name)
