"""Readable names for the methods of the text experiments (diloco_text.py), for tables and plots:
``diloco_H32_o1.0_m0.5_frag4_fp16`` reads "DiLoCo, H=32, outer lr 1.0 / momentum 0.5, 4
fragments, fp16 pseudo-gradient"."""
import re

FIXED = {"sync": "sync", "int8": "8-bit quantization", "int4": "4-bit quantization",
         "ddp_powersgd_r4": "DDP + powerSGD_hook, rank 4"}
PERIODIC = {"localsgd": "local SGD", "easgd": "EASGD", "leader": "Leader, pull 0.5"}
DILOCO = re.compile(r"diloco_H(?P<H>\d+)(_o(?P<lr>[\d.]+)_m(?P<mu>[\d.]+))?"
                    r"(_frag(?P<frag>\d+))?(?P<fp16>_fp16)?")


def label(name):
    """The method's readable name (the name itself when it is none of the known forms)."""
    if name in FIXED:
        return FIXED[name]
    m = re.fullmatch(r"powersgd_r(\d+)", name)
    if m:
        return f"PowerSGD, rank {m.group(1)}"
    m = re.fullmatch(r"(localsgd|easgd|leader)_H(\d+)", name)
    if m:
        kind, _, rest = PERIODIC[m.group(1)].partition(",")
        return f"{kind}, H={m.group(2)}" + (f",{rest}" if rest else "")
    m = DILOCO.fullmatch(name)
    if not m:
        return name
    parts = [f"DiLoCo, H={m['H']}", f"outer lr {m['lr']} / momentum {m['mu']}" if m["lr"]
             else "the paper's outer lr 0.7 / momentum 0.9"]
    if m["frag"]:
        parts.append(f"{m['frag']} fragments")
    if m["fp16"]:
        parts.append("fp16 pseudo-gradient")
    return ", ".join(parts)
