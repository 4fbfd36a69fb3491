"""timm's EfficientNet / MobileNet family by name (`timm:efficientnet_b0`), without importing timm.

Each model's architecture definition is data in layer_configs/timm_models.json (timm's block
strings per stage, its width and depth multipliers and rounding, stem, head, activation and SE
rule, read from timm 1.0.31); this module decodes them the way timm's EfficientNet builder does:

* a block string is ``TYPE_r<repeats>_k<kernel>_s<stride>_e<expansion>_c<channels>[_se<ratio>]``
  with optional ``noskip``/``skip`` and activation overrides (``nre`` ReLU, ``nr6`` ReLU6,
  ``nhs`` hard-swish, ``nsw`` swish); types ``ds`` (dsconv), ``ir`` (irb), ``er`` (er), ``cn``
  (conv, residual only with ``skip``);
* every ``c`` becomes round_channels(c x channel_multiplier) (make_divisible with the model's
  divisor and round limit); the stem too unless it is fixed; the head width is the model's;
* a stage's repeats are scaled together: ceil(total x depth_multiplier) (or round) and handed out
  from the last string backwards;
* ``fc`` (EdgeResidual's forced input width) becomes the expansion ratio that gives the same
  hidden width from the block's real input;
* SE is se1 (EfficientNet: round(mid x r / e), sigmoid) or se2 (MobileNetV3: make_divisible(mid x
  r, 8), hard sigmoid, ReLU); heads are `tail` (EfficientNet) or `pooltail` (MobileNetV3).

TensorFlow's "same" padding (tf_* models) is built symmetric: output sizes and parameter counts
are the same; only the pad layer's own time differs. Anything else (mixed kernels, CondConv,
grouped or split convolutions, space-to-depth, other SE rules or norms) is refused in one line
naming the block or feature.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

from latbench import resources
from latbench.arch import Arch, StagedArch, StageSpec
from latbench.blocks import BlockArgs
from latbench.cost import make_divisible
from latbench.errors import ArchError, SpecError

PREFIX = "timm:"
SE_RATIO = 0.25
_TYPES = {"ds": "dsconv", "ir": "irb", "er": "er", "cn": "conv"}
_UNSUPPORTED_TYPES = {"dsa": "depthwise-separable blocks with a pointwise activation (dsa)",
                      "uir": "universal inverted residuals (uir)", "mqa": "mobile attention (mqa)",
                      "mha": "mobile attention (mha)"}
_ACT_TOKENS = {"nre": "relu", "nr6": "relu6", "nhs": "hswish", "nsw": "swish"}


@lru_cache(maxsize=1)
def models() -> dict:
    """The model records of layer_configs/timm_models.json, by name."""
    doc = resources.read_json(resources.config_dir() / "timm_models.json", "timm model")
    return doc["models"]


def is_timm(source) -> bool:
    return isinstance(source, str) and source.startswith(PREFIX)


def timm_arch(source: str) -> Arch:
    """The network of `timm:NAME` at the model's default resolution; ArchError (one line) when the
    name is unknown or the model uses a block latbench cannot represent."""
    name = source[len(PREFIX):] if is_timm(source) else source
    rec = models().get(name)
    if rec is None:
        raise ArchError(f"{source}: not a timm EfficientNet/MobileNet model latbench knows; "
                        "latbench arch list --timm lists them")
    return _Decoder(name, rec).arch()


def supported() -> dict[str, tuple[Arch | None, str]]:
    """Every known model: (its network, "") when latbench represents it, else (None, why not)."""
    out = {}
    for name in models():
        try:
            out[name] = (timm_arch(PREFIX + name), "")
        except ArchError as err:
            out[name] = (None, str(err).split(": ", 1)[-1])
    return out


class _Decoder:
    """One model's record decoded into a StagedArch (see the module docstring)."""

    def __init__(self, name: str, rec: dict):
        self.name, self.rec = name, rec
        self.label = PREFIX + name

    def fail(self, why: str):
        raise ArchError(f"{self.label}: {why}: latbench cannot represent it")

    def round_chs(self, c: int) -> int:
        mult = self.rec["channel_multiplier"]
        if not mult:
            return c
        return int(make_divisible(c * mult, self.rec["channel_divisor"], self.rec["round_limit"]))

    def arch(self) -> Arch:
        rec = self.rec
        act = rec["act"]
        stem = rec["stem"]
        channels = stem["size"] if stem["fixed"] else self.round_chs(stem["size"])
        head = BlockArgs(kind="head", out_channels=channels, kernel=stem["kernel"], stride=2, act=act)
        stages, number = [], 0
        for i, strings in enumerate(rec["arch_def"]):
            for text, repeats in zip(strings, self.stage_depths(i, strings)):
                number += 1
                stage, channels = self.stage(text, repeats, channels, number)
                stages.extend(stage)
                number = stages[-1].stage
        self.check_model()  # after the blocks: an unknown block is the more useful thing to name
        h = rec["head"]
        kind = "tail" if h["style"] == "efficientnet" else "pooltail"
        tail = BlockArgs(kind=kind, out_channels=h["width"], kernel=1, classes=1000, act=act,
                         bias=h["bias"] if kind == "pooltail" else True)
        try:
            return StagedArch(rec["resolution"], head, tuple(stages), tail, name=self.label).expand()
        except ArchError as err:
            raise ArchError(f"{self.label}: {err}") from None

    def check_model(self) -> None:
        rec = self.rec
        if rec.get("special"):
            self.fail(rec["special"])
        if rec["group_size"]:
            self.fail(f"grouped depthwise convolutions (group size {rec['group_size']})")
        if rec["head"]["style"] not in ("efficientnet", "mobilenetv3") or not rec["head"]["width"]:
            self.fail(f"a {rec['head']['style']} head" if rec["head"]["width"] else "a classifier without a head conv")
        if rec["act"] not in ("relu", "relu6", "swish", "hswish"):
            self.fail(f"the {rec['act']} activation")

    def stage_depths(self, i: int, strings: list[str]) -> list[int]:
        """Repeats of each string of stage `i` after depth scaling (timm's _scale_stage_depth)."""
        rec = self.rec
        reps = [int(self.tokens(s).get("r", "0")) for s in strings]
        dm = rec["depth_multiplier"]
        dm = dm[i] if isinstance(dm, list) else dm
        if rec["fix_first_last"] and i in (0, len(rec["arch_def"]) - 1):
            dm = 1.0
        total = sum(reps)
        target = max(1, round(total * dm)) if rec["depth_trunc"] == "round" else int(math.ceil(total * dm))
        out = []
        for r in reversed(reps):
            rs = max(1, round(r / total * target))
            out.append(rs)
            total -= r
            target -= rs
        return out[::-1]

    def tokens(self, text: str) -> dict:
        parts = text.split("_")
        out = {"type": parts[0]}
        for tok in parts[1:]:
            if tok in ("skip", "noskip") or tok in _ACT_TOKENS:
                out[tok] = True
            elif tok.startswith("n") and not tok[1:2].isdigit():
                out[tok] = True  # another activation override (nmi: mish)
            else:
                key, value = (re.split(r"(\d.*)", tok) + ["", ""])[:2]
                out[key] = value
        return out

    def stage(self, text: str, repeats: int, channels: int, number: int) -> tuple[list[StageSpec], int]:
        """The stages of one block string (a `cn ... skip` string whose first layer cannot add its
        input becomes two), and the channels after it."""
        t = self.tokens(text)
        kind = _TYPES.get(t["type"])
        where = f"block {text!r}"
        if kind is None:
            self.fail(f"{where}: {_UNSUPPORTED_TYPES.get(t['type'], repr(t['type']) + ' blocks')}")
        for key, why in (("cc", "CondConv experts"), ("d", "space-to-depth"), ("gs", "grouped convolutions")):
            if key in t and t[key] not in ("", "0"):
                self.fail(f"{where}: {why}")
        for key in ("a", "p"):
            if t.get(key, "1") != "1":
                self.fail(f"{where}: split or extra pointwise convolutions ({key}{t[key]})")
        if "." in t.get("k", ""):
            self.fail(f"{where}: mixed kernels (k{t['k']})")
        act = next((a for tok, a in _ACT_TOKENS.items() if tok in t), self.rec["act"])
        if any(k.startswith("n") and k not in _ACT_TOKENS and k != "noskip" for k in t):
            self.fail(f"{where}: an activation latbench does not have")
        out = self.round_chs(int(t["c"]))
        stride = int(t.get("s", "1"))
        args = {"kind": kind, "out_channels": out, "kernel": int(t.get("k", "3")), "stride": stride, "act": act}
        if kind in ("irb", "er"):
            args["expansion"] = self.expansion(t, channels, repeats, where)
        if kind != "conv":
            args["se"] = self.se(t, where)
            args["skip"] = False if "noskip" in t else None
        try:
            if kind == "conv" and "skip" in t:  # a residual where the shape allows one (timm's cn rule)
                first = dict(args, skip=True if stride == 1 and channels == out else None)
                stages = [StageSpec(number, 1, BlockArgs(**first))]
                if repeats > 1:
                    stages.append(StageSpec(number + 1, repeats - 1, BlockArgs(**dict(args, stride=1, skip=True))))
                return stages, out
            return [StageSpec(number, repeats, BlockArgs(**args))], out
        except SpecError as err:
            raise ArchError(f"{self.label}: {where}: {err}") from None

    def expansion(self, t: dict, channels: int, repeats: int, where: str) -> float:
        """The expansion ratio; with `fc` (EdgeResidual's forced input width: hidden =
        make_divisible(round_chs(fc) x e)) the ratio that gives that hidden width from the real input."""
        e = float(t.get("e", "1"))
        if "fc" not in t or t["fc"] in ("", "0"):
            return e
        hidden = int(make_divisible(self.round_chs(int(t["fc"])) * e))
        ratio = hidden / channels
        if repeats != 1 or int(make_divisible(channels * ratio)) != hidden:
            self.fail(f"{where}: a forced expansion input width (fc) latbench cannot express as a ratio")
        return ratio

    def se(self, t: dict, where: str) -> int:
        ratio = float(t.get("se", "0") or 0)
        if ratio == 0:
            return 0
        style = self.rec["se"]
        if ratio != SE_RATIO or style not in ("se1", "se2"):
            self.fail(f"{where}: squeeze-excitation of ratio {ratio:g} with {style.removeprefix('other: ')}")
        return 1 if style == "se1" else 2
