"""Codecs: how a bucket crosses the wire (base.py has the interface, view.py what a codec sees).
``codec_for`` maps what the user passes as ``compression=`` to a codec: Horovod's
``Compression.none`` and ``Compression.fp16`` (the fused cast kernels), any other Horovod
``Compressor`` (its own compress/decompress on the flat bucket), or a codec object (``PowerSGD``,
``Quantize``, ``TopK``, or one of the user's own subclass of ``Codec``).

``NAMED`` is the one registry of codecs by name: the ``+CODEC`` part of a method's name in the
catalog (methods.py), and, with ``probe=True``, a wire format the advisor's probe measures. A new
codec is its class and one ``register`` call.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Tuple

import torch
from horovod.torch.compression import Compression

from horovod_ext.codecs.base import Codec, Collective, Exchange, replay
from horovod_ext.codecs.plain import CastCodec, CompressorCodec
from horovod_ext.codecs.powersgd import PowerSGD
from horovod_ext.codecs.quantize import Quantize
from horovod_ext.codecs.topk import TopK
from horovod_ext.codecs.view import BucketView

__all__ = ["BucketView", "Codec", "Collective", "Exchange", "NAMED", "PowerSGD", "Quantize",
           "TopK", "codec_for", "register", "replay"]

_HOROVOD = {Compression.none: lambda: CompressorCodec(Compression.none),
            Compression.fp16: lambda: CastCodec(torch.float16, "fp16")}


def codec_for(compression):
    """The codec for a ``compression=`` argument; ValueError naming it when it is none of the
    above."""
    if isinstance(compression, Codec):
        return compression
    if compression in _HOROVOD:
        return _HOROVOD[compression]()
    if hasattr(compression, "compress") and hasattr(compression, "decompress"):
        return CompressorCodec(compression)
    raise ValueError(f"compression must be a Horovod Compressor (such as "
                     f"horovod_ext.Compression.fp16) or a codec (horovod_ext.PowerSGD, "
                     f"horovod_ext.Quantize, horovod_ext.TopK); got {compression!r}")


@dataclass(frozen=True)
class Named:
    """A codec by name. ``make(**settings)``: the ``compression=`` argument; ``letters``: the
    settings a name may give (letter -> (field, type)); ``label(settings)``: its words in tables
    and plots; ``spelled(settings)``: how the API writes it; ``probe``: measured by the probe."""

    make: Callable[..., Any]
    label: Callable[[Dict[str, Any]], str]
    spelled: Callable[[Dict[str, Any]], str]
    letters: Dict[str, Tuple[str, type]] = field(default_factory=dict)
    probe: bool = False


NAMED: Dict[str, Named] = {}


def register(name, make, label, spelled=None, letters=None, probe=False):
    """Adds codec ``name`` to ``NAMED`` (see ``Named``); ``label`` and ``spelled`` may be
    strings when the codec has no settings."""
    if not isinstance(name, str) or not name.isidentifier() or name in NAMED:
        raise ValueError(f"codec name must be a new identifier; got {name!r}")
    text = (lambda s, t=label: t) if isinstance(label, str) else label
    call = spelled if callable(spelled) else (lambda s, t=spelled or name: t)
    NAMED[name] = Named(make, text, call, dict(letters or {}), probe)


def _call(cls, settings):
    return f"{cls}({', '.join(f'{k}={v}' for k, v in settings.items())})"


register("fp16", lambda: Compression.fp16, "fp16", "Compression.fp16", probe=True)
register("int8", lambda: Quantize(bits=8), "8-bit quantization", "Quantize(bits=8)", probe=True)
register("int4", lambda: Quantize(bits=4), "4-bit quantization", "Quantize(bits=4)")
register("powersgd", PowerSGD,
         lambda s: ", ".join([f"PowerSGD, rank {s.get('rank', 4)}"]
                             + ([f"from step {s['start_step']}"] if "start_step" in s else [])),
         lambda s: _call("PowerSGD", s), {"r": ("rank", int), "s": ("start_step", int)},
         probe=True)
register("topk", TopK,
         lambda s: f"top-{s.get('density', 0.01):g} sparse, {s.get('bits', 2)}-bit values",
         lambda s: _call("TopK", s), {"d": ("density", float), "b": ("bits", int),
                                      "c": ("chunk", int)})
