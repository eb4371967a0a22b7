"""Readable names for the methods of the text experiments (diloco_text.py), for tables and plots:
the catalog's labels (``horovod_ext.methods.label``: ``diloco_H32_o1.0_m0.5_frag4_fp16`` reads
"DiLoCo, H=32, outer lr 1.0 / momentum 0.5, 4 fragments, fp16 pseudo-gradient"), and the DDP
peers of these experiments, which are not methods of ours."""
from horovod_ext import methods

PEERS = {"ddp_powersgd_r4": "DDP + powerSGD_hook, rank 4", "ddp_fp16": "DDP + fp16_compress_hook"}


def label(name):
    """The method's readable name (the name itself when it is none of the known forms)."""
    return PEERS.get(name) or methods.label(name)
