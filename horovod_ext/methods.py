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
    diloco-H<period|auto>[-o<outer_lr>][-m<outer_momentum>][-f<fragments>][-t<overlap>][-a<mix>]
    +fp16                                  Compression.fp16
    +int8, +int4                           Quantize(bits=8), Quantize(bits=4)
    +powersgd[-r<rank>][-s<start_step>]    PowerSGD(rank, start_step)

so ``diloco-H32-o1.0-m0.5+int4`` is ``DiLoCo(period=32, outer_lr=1.0, outer_momentum=0.5)``
with ``Quantize(bits=4)``, and ``sync+powersgd-r4`` is ``Sync()`` with ``PowerSGD(rank=4)``.
``canonical()`` maps the names of earlier result files ("sync-fp16", "sync_fp16",
"diloco_H32_o1.0_m0.5_frag4_fp16", ...) to this grammar, so they still read. A new mode is its
configuration class and one ``register_mode`` call here; a new codec is its class and one
``horovod_ext.codecs.register`` call.
"""
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from horovod_ext import modes as _modes
from horovod_ext.codecs import NAMED as CODECS


@dataclass(frozen=True)
class NamedMode:
    """A mode by name: its configuration class, the settings a name may give (letter -> (field,
    type)), the fields every name must give, and its words in labels."""

    cls: Any
    letters: Dict[str, Tuple[str, type]] = field(default_factory=dict)
    required: Tuple[str, ...] = ()
    words: str = ""


MODES: Dict[str, NamedMode] = {}


def register_mode(kind, cls, letters=None, required=(), words=None):
    """Adds mode ``kind`` (a ``ModeConfig`` subclass) to the catalog (see ``NamedMode``)."""
    if not isinstance(kind, str) or not kind.isidentifier() or kind in MODES:
        raise ValueError(f"mode kind must be a new identifier; got {kind!r}")
    MODES[kind] = NamedMode(cls, dict(letters or {}), tuple(required), words or kind)


register_mode("sync", _modes.Sync)
register_mode("delayed", _modes.Delayed, {"k": ("staleness", int)})
register_mode("localsgd", _modes.LocalSGD, {"H": ("period", int)}, ("period",), "local SGD")
register_mode("easgd", _modes.EASGD, {"H": ("period", int)}, ("period",), "EASGD")
register_mode("leader", _modes.Leader, {"H": ("period", int), "p": ("pull", float)},
              ("period", "pull"), "Leader")
def _period(text):
    """A period in a name: an int, or "auto" (DiLoCo's period chosen for the link)."""
    return text if text == "auto" else int(text)


WORDS = {int: "an int", _period: "an int or 'auto'"}  # what a setting's text must be
register_mode("diloco", _modes.DiLoCo, {"H": ("period", _period), "o": ("outer_lr", float),
                                        "m": ("outer_momentum", float), "f": ("fragments", int),
                                        "t": ("overlap", int), "a": ("mix", float)},
              ("period",), "DiLoCo")
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
        out: Dict[str, Any] = {"mode": MODES[self.mode].cls(**dict(self.mode_settings))}
        if self.codec is not None:
            out["compression"] = CODECS[self.codec].make(**dict(self.codec_settings))
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
            raise ValueError(f"method {name!r}: {field} must be {WORDS.get(typ, 'a number')}, "
                             f"got {item[len(letter):]!r}") from None
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
    letters, required = MODES[kind].letters, MODES[kind].required
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
        codec_settings = _settings(codec_part, codec, CODECS[codec].letters, name)
    method = Method(text, kind, tuple(mode.items()), codec, tuple(codec_settings.items()))
    method.kwargs()  # the classes check their fields: a bad value fails here, named
    return method


def key(name: str) -> Tuple[str, str]:
    """What the method is, whatever its spelling: ``key("delayed") == key("delayed-k1")`` and
    ``key("powersgd_r4") == key("sync+powersgd-r4")``."""
    kw = parse(name).kwargs()
    return repr(kw["mode"]), repr(kw.get("compression"))


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
    if m["kind"] == "diloco":  # recorded when DiLoCo's defaults were the paper's 0.7 and 0.9
        out += [x for x in ("o0.7", "m0.9") if not any(o.startswith(x[0]) for o in out)]
    return "-".join([m["kind"]] + out) + codec


_LABELLED = ("sync", "delayed", "localsgd", "easgd", "leader", "diloco")  # settings worded below


def _settings_words(m):
    s, parts = dict(m.mode_settings), []
    if "staleness" in s:
        parts.append(f"staleness {s['staleness']}")
    if "period" in s:
        parts.append(f"H={s['period']}")
    if "pull" in s:
        parts.append(f"pull {s['pull']}")
    if m.mode == "diloco":
        outer = (s.get("outer_lr", _modes.DiLoCo.outer_lr),
                 s.get("outer_momentum", _modes.DiLoCo.outer_momentum))
        parts.append("the paper's outer lr 0.7 / momentum 0.9" if outer == (0.7, 0.9)
                     else f"outer lr {outer[0]} / momentum {outer[1]}")
        parts += [f"{s[k]} {w}" if k == "fragments" else f"{w} {s[k]}"
                  for k, w in (("fragments", "fragments"), ("overlap", "overlap"), ("mix", "mix"))
                  if k in s]
    return parts


def label(name: str) -> str:
    """The method's readable name for tables and plots ("DiLoCo, H=32, outer lr 1.0 / momentum
    0.5, 4 fragments, fp16 pseudo-gradient"); the name itself when it is not in the catalog."""
    try:
        m = parse(name)
    except ValueError:
        return name
    parts = [MODES[m.mode].words] + (_settings_words(m) if m.mode in _LABELLED else
                                     [f"{f} {v}" for f, v in m.mode_settings])
    if m.codec is not None:
        codec = CODECS[m.codec].label(dict(m.codec_settings))
        if m.mode == "diloco" and m.codec == "fp16":
            codec = "fp16 pseudo-gradient"
        parts = [codec] if m.mode == "sync" and m.codec != "fp16" else parts + [codec]
    return ", ".join(parts)


def spelled(name: str) -> str:
    """The method as it is written in the API: ``DiLoCo(period=8, outer_lr=1.0),
    compression=Quantize(bits=4)``."""
    m = parse(name)

    def call(cls, settings):
        return f"{cls}({', '.join(f'{k}={v}' for k, v in settings)})"

    out = call(MODES[m.mode].cls.__name__, m.mode_settings)
    if m.codec is not None:
        out += ", compression=" + CODECS[m.codec].spelled(dict(m.codec_settings))
    return out
