"""The catalog of training methods: one name for each (mode, its settings, codec), parsed to the
``mode=`` and ``compression=`` arguments of ``hvd_ext.DistributedOptimizer``, with a readable
label for tables and plots.

A name is ``MODE[-SETTING...][+CODEC[-SETTING...]]``; a setting is its letter and its value, in
any order, and what is left out takes the class's default::

    sync                                   Sync()
    delayed[-k<staleness>]                 Delayed(staleness=1)
    localsgd-H<period>                     LocalSGD(period)
    easgd-H<period>                        EASGD(period)
    leader-H<period>[-p<pull>]             Leader(period, pull)
    diloco-H<period>[-o<outer_lr>][-m<outer_momentum>][-f<fragments>][-t<overlap>][-a<mix>]
    +fp16                                  Compression.fp16
    +int8, +int4                           Quantize(bits=8), Quantize(bits=4)
    +powersgd[-r<rank>][-s<start_step>]    PowerSGD(rank, start_step)

so ``diloco-H32-o1.0-m0.5+int4`` is ``DiLoCo(period=32, outer_lr=1.0, outer_momentum=0.5)``
with ``Quantize(bits=4)``, and ``sync+powersgd-r4`` is ``Sync()`` with ``PowerSGD(rank=4)``.
``canonical()`` maps the names of earlier result files ("sync-fp16", "sync_fp16",
"diloco_H32_o1.0_m0.5_frag4_fp16", ...) to this grammar, so they still read.
"""
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

# kind -> (its class's name in horovod_ext, {letter: (field, type)}, fields every name must give)
MODES: Dict[str, Tuple[str, Dict[str, Tuple[str, type]], Tuple[str, ...]]] = {
    "sync": ("Sync", {}, ()),
    "delayed": ("Delayed", {"k": ("staleness", int)}, ()),
    "localsgd": ("LocalSGD", {"H": ("period", int)}, ("period",)),
    "easgd": ("EASGD", {"H": ("period", int)}, ("period",)),
    "leader": ("Leader", {"H": ("period", int), "p": ("pull", float)}, ("period", "pull")),
    "diloco": ("DiLoCo", {"H": ("period", int), "o": ("outer_lr", float),
                          "m": ("outer_momentum", float), "f": ("fragments", int),
                          "t": ("overlap", int), "a": ("mix", float)}, ("period",)),
}
CODECS: Dict[str, Tuple[Callable[..., Any], Dict[str, Tuple[str, type]]]] = {
    "fp16": (lambda h: h.Compression.fp16, {}),
    "int8": (lambda h: h.Quantize(bits=8), {}),
    "int4": (lambda h: h.Quantize(bits=4), {}),
    "powersgd": (lambda h, **kw: h.PowerSGD(**kw), {"r": ("rank", int), "s": ("start_step", int)}),
}
# Names of earlier result files and of the throughput harness, in the catalog's grammar.
LEGACY = {"sync-fp16": "sync+fp16", "sync_fp16": "sync+fp16", "int8": "sync+int8",
          "int4": "sync+int4", "powersgd": "sync+powersgd-r4", "delayed-fp16": "delayed+fp16",
          "delayed_fp16": "delayed+fp16", "delayed2": "delayed-k2",
          "leader_H32": "leader-H32-p0.5"}
_LEGACY_FORM = re.compile(r"(?P<kind>[a-z]+)_(?P<rest>.*)")
_LEGACY_PARTS = {"H": "H", "o": "o", "m": "m", "frag": "f", "r": "r"}


@dataclass(frozen=True)
class Method:
    """A parsed name: the mode's kind and settings, the codec's kind and settings (or None)."""

    name: str
    mode: str
    mode_settings: Tuple[Tuple[str, Any], ...]
    codec: Optional[str] = None
    codec_settings: Tuple[Tuple[str, Any], ...] = ()

    def kwargs(self) -> Dict[str, Any]:
        """``mode=`` (and ``compression=``) for ``hvd_ext.DistributedOptimizer``: new objects
        at every call."""
        import horovod_ext as h
        out: Dict[str, Any] = {"mode": getattr(h, MODES[self.mode][0])(**dict(self.mode_settings))}
        if self.codec is not None:
            make = CODECS[self.codec][0]
            out["compression"] = make(h, **dict(self.codec_settings)) if self.codec_settings \
                else make(h)
        return out


def _settings(part, kind, letters, name):
    """[(field, value)] of the '-'-separated settings after ``kind`` in ``part``."""
    out = {}
    for item in part.split("-")[1:]:
        letter = next((k for k in letters if item.startswith(k) and len(item) > len(k)), None)
        if letter is None:
            known = ", ".join(f"{k}<{f}>" for k, (f, _) in letters.items()) or "none"
            raise ValueError(f"method {name!r}: unknown setting {item!r} of {kind!r} "
                             f"(known: {known})")
        field, typ = letters[letter]
        try:
            value = typ(item[len(letter):])
        except ValueError:
            raise ValueError(f"method {name!r}: {field} must be a{'n int' if typ is int else ' number'}"
                             f", got {item[len(letter):]!r}") from None
        if field in out:
            raise ValueError(f"method {name!r}: {field} given twice")
        out[field] = value
    return out


def parse(name: str) -> Method:
    """The method named ``name`` (catalog grammar, or an earlier name ``canonical`` knows); a
    ValueError names what is wrong."""
    if not isinstance(name, str):
        raise ValueError(f"method name must be a string, got {name!r}")
    text = canonical(name)
    mode_part, _, codec_part = text.partition("+")
    kind = mode_part.split("-")[0]
    if kind not in MODES:
        raise ValueError(f"method {name!r}: unknown mode {kind!r}; known: {', '.join(MODES)}")
    _, letters, required = MODES[kind]
    mode = _settings(mode_part, kind, letters, name)
    missing = [f for f in required if f not in mode]
    if missing:
        example = "-".join([kind] + [k + "1" for k, (f, _) in letters.items() if f in required])
        raise ValueError(f"method {name!r}: {kind} needs {', '.join(missing)} (e.g. {example})")
    codec, codec_settings = None, {}
    if codec_part:
        codec = codec_part.split("-")[0]
        if codec not in CODECS:
            raise ValueError(f"method {name!r}: unknown codec {codec!r}; known: "
                             f"{', '.join(CODECS)}")
        codec_settings = _settings(codec_part, codec, CODECS[codec][1], name)
    method = Method(text, kind, tuple(mode.items()), codec, tuple(codec_settings.items()))
    method.kwargs()  # the classes check their fields: a bad value fails here, named
    return method


def canonical(name: str) -> str:
    """``name`` in the catalog's grammar: earlier spellings (``LEGACY``, and the underscore
    forms ``diloco_H32_o1.0_m0.5_frag4_fp16``, ``powersgd_r4``, ``localsgd_H32``) mapped."""
    if name in LEGACY:
        return LEGACY[name]
    m = _LEGACY_FORM.fullmatch(name)
    if m is None or m["kind"] not in MODES and m["kind"] != "powersgd":
        return name
    parts, codec = m["rest"].split("_"), ""
    if parts[-1] == "fp16":
        parts, codec = parts[:-1], "+fp16"
    out = []
    for p in parts:
        letter = next((k for k in sorted(_LEGACY_PARTS, key=len, reverse=True)
                       if p.startswith(k) and len(p) > len(k)), None)
        if letter is None:
            return name
        out.append(_LEGACY_PARTS[letter] + p[len(letter):])
    if m["kind"] == "powersgd":
        return "sync+powersgd-" + "-".join(out)
    return "-".join([m["kind"]] + out) + codec


_MODE_LABELS = {"sync": "sync", "delayed": "delayed", "localsgd": "local SGD", "easgd": "EASGD",
                "leader": "Leader", "diloco": "DiLoCo"}


def label(name: str) -> str:
    """The method's readable name for tables and plots ("DiLoCo, H=32, outer lr 1.0 / momentum
    0.5, 4 fragments, fp16 pseudo-gradient"); the name itself when it is not in the catalog."""
    try:
        m = parse(name)
    except ValueError:
        return name
    s, parts = dict(m.mode_settings), [_MODE_LABELS[m.mode]]
    if "staleness" in s:
        parts.append(f"staleness {s['staleness']}")
    if "period" in s:
        parts.append(f"H={s['period']}")
    if "pull" in s:
        parts.append(f"pull {s['pull']}")
    if m.mode == "diloco":
        parts.append(f"outer lr {s.get('outer_lr', 0.7)} / momentum "
                     f"{s.get('outer_momentum', 0.9)}" if {"outer_lr", "outer_momentum"} & set(s)
                     else "the paper's outer lr 0.7 / momentum 0.9")
        if "fragments" in s:
            parts.append(f"{s['fragments']} fragments")
        if "overlap" in s:
            parts.append(f"overlap {s['overlap']}")
        if "mix" in s:
            parts.append(f"mix {s['mix']}")
    if m.codec is not None:
        c = dict(m.codec_settings)
        codec = {"fp16": "fp16", "int8": "8-bit quantization", "int4": "4-bit quantization"}.get(
            m.codec) or ", ".join([f"PowerSGD, rank {c.get('rank', 4)}"]
                                  + ([f"from step {c['start_step']}"] if "start_step" in c else []))
        if m.mode == "diloco" and m.codec == "fp16":
            codec = "fp16 pseudo-gradient"
        parts = [codec] if m.mode == "sync" and m.codec != "fp16" else parts + [codec]
    return ", ".join(parts)


_CODEC_CALLS = {"fp16": "Compression.fp16", "int8": "Quantize(bits=8)", "int4": "Quantize(bits=4)"}


def spelled(name: str) -> str:
    """The method as it is written in the API: ``DiLoCo(period=8, outer_lr=1.0),
    compression=Quantize(bits=4)``."""
    m = parse(name)

    def call(cls, settings):
        return f"{cls}({', '.join(f'{k}={v}' for k, v in settings)})"

    out = call(MODES[m.mode][0], m.mode_settings)
    if m.codec is not None:
        out += ", compression=" + (_CODEC_CALLS.get(m.codec) or call("PowerSGD", m.codec_settings))
    return out
