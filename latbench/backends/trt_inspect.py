"""Reading TensorRT's engine-inspector JSON without TensorRT: fused layers, their types, and
which of them touch the engine's inputs and outputs.

Format facts (no TensorRT import here, so the parser runs and is tested anywhere):

* ``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`` returns one object,
  ``{"Layers": [...], <I/O tensors>}``. With ``ProfilingVerbosity.DETAILED`` each layer is an
  object with "Name", "LayerType", "Inputs"/"Outputs" (lists of objects with a "Name"), "Origin",
  "TacticName"/"TacticValue"; otherwise each layer is just its name (a string). Source: the
  engine-explorer examples in NVIDIA/TensorRT release/10.16,
  tools/experimental/trt-engine-explorer/examples/pytorch/resnet/A100/fp16/resnet.onnx.engine.graph.json,
  and Polygraphy's reader (tools/Polygraphy/polygraphy/backend/trt/util.py), which treats a
  non-DETAILED layer as a plain name.
* TensorRT 10.x lists the engine's I/O tensor names as ``"Bindings": ["input", "output"]``;
  TensorRT 11.x replaced it with ``"I/O Tensors": [{"Name": ..., "IOMode": "Input", ...}]``, and
  split the per-tensor "Format/Datatype" string into separate fields. Source: "Migrating
  IEngineInspector Usage from TensorRT 10.x to 11.x", docs.nvidia.com/deeplearning/tensorrt/
  11.0.0/api/migration/tensorrt-10x-to-11x-IEngineInspector.html. Only tensor *names* are read
  here, so the format/type split does not matter.
* Reformat layers are named "Reformatting CopyNode for Input Tensor 0 to <layer>" (LayerType
  "Reformat"; Polygraphy has shown such rows as NoOp too, NVIDIA/TensorRT issue #3679). TensorRT
  inserts them where the format it prefers inside differs from the linear format of an engine I/O
  tensor (issue #2136), so at an isolated block's inputs and outputs they cost time that the same
  block inside a whole network does not pay (measurement.md, issue #3842).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from latbench.errors import LatbenchError

_REFORMAT_MARKS = ("Reformat", "CopyNode")


@dataclass(frozen=True)
class EngineLayers:
    """The fused layers of a built engine, in execution order.

    names, types: layer names and LayerType strings ("" when the engine was built without
    DETAILED profiling verbosity). tactics: tactic name or value per layer ("" when absent).
    io_tensors: names of the engine's input and output tensors.
    io_layers: names of the layers that read an engine input or write an engine output.
    """

    names: tuple[str, ...]
    types: tuple[str, ...]
    tactics: tuple[str, ...]
    io_tensors: tuple[str, ...]
    io_layers: tuple[str, ...]

    @property
    def reformat_layers(self) -> tuple[str, ...]:
        return tuple(n for n, t in zip(self.names, self.types) if is_reformat(n, t))

    @property
    def reformat_io_layers(self) -> tuple[str, ...]:
        """Reformat layers at an engine input or output: they would not exist inside a network."""
        io = set(self.io_layers)
        return tuple(n for n in self.reformat_layers if n in io)

    def identity(self) -> str:
        """Short hash of the layer names, types and tactics: equal hashes mean the same kernels."""
        text = "\n".join(f"{n}|{t}|{c}" for n, t, c in zip(self.names, self.types, self.tactics))
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def is_reformat(name: str, layer_type: str) -> bool:
    """True for a layer that only changes a tensor's format or type (a copy TensorRT inserted)."""
    return layer_type == "Reformat" or any(mark in name for mark in _REFORMAT_MARKS)


def io_tensor_names(info: dict) -> tuple[str, ...]:
    """Engine I/O tensor names from either schema: 10.x "Bindings" or 11.x "I/O Tensors"."""
    if "I/O Tensors" in info:
        return tuple(t["Name"] if isinstance(t, dict) else str(t) for t in info["I/O Tensors"])
    return tuple(str(t) for t in info.get("Bindings", ()))


def parse_engine_info(text: str | dict, io_names=()) -> EngineLayers:
    """Parse ``get_engine_information(JSON)`` output (a string or the decoded object).

    io_names: I/O tensor names known from the engine API (``engine.get_tensor_name``); they are
    merged with those the JSON lists, so a schema that names them differently still works.
    Raises LatbenchError when the text is not an engine-information object.
    """
    try:
        info = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as err:
        raise LatbenchError(f"TensorRT's engine inspector returned unreadable JSON: {err}") from None
    if not isinstance(info, dict) or not isinstance(info.get("Layers"), list):
        raise LatbenchError("TensorRT's engine inspector JSON has no 'Layers' list; "
                            "was the engine built with ProfilingVerbosity.DETAILED?")
    io = tuple(dict.fromkeys((*io_tensor_names(info), *io_names)))
    io_set = set(io)
    names, types, tactics, io_layers = [], [], [], []
    for layer in info["Layers"]:
        if isinstance(layer, dict):
            name, ltype = str(layer.get("Name", "")), str(layer.get("LayerType", ""))
            # Both: a name can cover several tactic values (Polygraphy keys on the value).
            tactic = "|".join(str(layer[k]) for k in ("TacticName", "TacticValue") if layer.get(k))
            touched = {t.get("Name") for key in ("Inputs", "Outputs") for t in layer.get(key) or ()
                       if isinstance(t, dict)}
        else:  # LAYER_NAMES_ONLY verbosity: the layer is its name and nothing else is known
            name, ltype, tactic, touched = str(layer), "", "", set()
        names.append(name)
        types.append(ltype)
        tactics.append(tactic)
        if touched & io_set:
            io_layers.append(name)
    return EngineLayers(tuple(names), tuple(types), tuple(tactics), io, tuple(io_layers))
