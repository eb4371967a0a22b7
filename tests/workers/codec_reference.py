"""Runs on every rank: the codecs' math, measured in a real job. Per case, rank 0 writes to the
JSON file argv[1]:

  powersgd_before_start   PowerSGD before start_step against Sync: largest parameter difference
  powersgd_full_rank      rank >= every matrix's smaller side, full-rank gradients (MSE, large
                          batch): largest relative difference from Sync
  powersgd_overlap        Sync(overlap_forward=True) + PowerSGD against Sync() + PowerSGD
  *_identity              error feedback: sum of the applied gradients + the ranks' mean error
                          against the sum of the mean gradients (largest relative difference)
  *_bytes                 bytes_sent of one compressed step against the payload formula
  int8_vs_sync, int4_...  relative difference of the applied gradient from Sync's
  topk_dense_vs_sync      TopK(density=1, bits=32) against Sync: largest parameter difference
  diloco_topk_*           DiLoCo's pseudo-gradients through TopK against plain DiLoCo
"""
import json
import sys

import horovod.torch as hvd
import torch
import torch.nn as nn
import torch.nn.functional as F

import horovod_ext as hvd_ext
from horovod_ext.codecs.quantize import piece_layout

STEPS = 4


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 24), nn.Tanh(), nn.Linear(24, 24), nn.Tanh(),
                         nn.Linear(24, 6))


def batch(t, size=64):
    g = torch.Generator().manual_seed(1000 * hvd.rank() + t)
    return torch.randn(size, 12, generator=g), torch.randn(size, 6, generator=g)


LR = 0.05


def build(compression, mode="sync", lr=LR):
    model = make_model()
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=lr),
                                       named_parameters=model.named_parameters(), mode=mode,
                                       compression=compression, bucket_cap_mb=0.002)
    return model, opt


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def train(compression, mode="sync", steps=STEPS, record=False):
    """Trains; with ``record``, also returns per step the applied gradient, the local gradient,
    and bytes_sent before and after."""
    model, opt = build(compression, mode)
    applied, local, sent = [], [], []
    for t in range(steps):
        x, y = batch(t)
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        if record:
            local.append(torch.cat([g.flatten() for g in
                                    torch.autograd.grad(loss, list(model.parameters()),
                                                        retain_graph=True)]))
        before = opt.bytes_sent
        loss.backward()
        opt.synchronize()
        sent.append(opt.bytes_sent - before)
        if record:
            applied.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        with opt.skip_synchronize():
            opt.step()
    opt.flush()
    return model, opt, applied, local, sent


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def mean_error(opt):
    """The ranks' mean error feedback, per parameter flattened in model order (sender errors
    averaged, plus every owner's error of its shard for Quantize)."""
    engine = opt._mode_object.engine
    total = torch.zeros(sum(p.numel() for p in engine.params))
    offsets, at = {}, 0
    for p in engine.params:
        offsets[p] = at
        at += p.numel()
    for s in engine._sets:
        for b in s.buckets:
            st = b.codec_state
            err = torch.zeros(b.flat.numel())
            if hasattr(st, "mats"):      # PowerSGD: per matrix
                for k, n, m, r in st.mats:
                    if st.error[k] is not None:
                        err[b.offsets[k]:b.offsets[k] + n * m] = st.error[k].flatten()
            elif not hasattr(st, "owner"):  # TopK: the bucket's error
                err += hvd.allreduce(st.error, op=hvd.Average, name=f"e.{s.slot}.{b.index}") \
                    * hvd.size()
            else:                        # Quantize: the bucket's sender error, owner shards
                err += hvd.allreduce(st.error, op=hvd.Average, name=f"e.{s.slot}.{b.index}") \
                    * hvd.size()
                err += hvd.allreduce(st.owner, op=hvd.Sum, name=f"o.{s.slot}.{b.index}") \
                    * hvd.size()
            for k, p in enumerate(b.params):
                total[offsets[p]:offsets[p] + p.numel()] += err[b.offsets[k]:b.offsets[k] + p.numel()]
    if hasattr(opt._mode_object.settings.codec, "bits"):
        return total / hvd.size()
    return hvd.allreduce(total, op=hvd.Average, name="mean_error")


def identity(compression, mode="sync"):
    """Plain SGD, so the sum of the applied gradients (flush's included) is the parameters'
    change over the learning rate."""
    model, opt, _, local, _ = train(compression, mode, record=True)
    mean_grads = sum(hvd.allreduce(g, op=hvd.Average, name=f"g{t}") for t, g in enumerate(local))
    applied = (flat(make_model()) - flat(model)) / LR
    return rel(applied + mean_error(opt), mean_grads)


def powersgd_bytes(rank):
    """One compressed step's bytes by the formula: per bucket, 2 (N-1)/N x 4 bytes x (the Ps and
    the whole tensors, then the Qs)."""
    model, opt = build(hvd_ext.PowerSGD(rank=rank, start_step=0))
    n, want = hvd.size(), 0.0
    for b in opt._mode_object.engine._sets[0].buckets:
        p_elems, q_elems = 0, 0
        for p in b.params:
            rows, cols = (p.shape[0], p.numel() // p.shape[0]) if p.dim() >= 2 else (0, 0)
            r = min(rank, rows, cols)
            if p.dim() >= 2 and rows * cols >= 2.0 * r * (rows + cols):
                p_elems, q_elems = p_elems + rows * r, q_elems + cols * r
            else:
                p_elems += p.numel()
        want += 2 * (n - 1) / n * 4 * (p_elems + q_elems)
    return want


def quantize_bytes(bits):
    model, opt = build(hvd_ext.Quantize(bits=bits))
    n, want = hvd.size(), 0.0
    for b in opt._mode_object.engine._sets[0].buckets:
        s, c, payload, scale_bytes = piece_layout(b.flat.numel(), n, bits, 2048)
        piece = payload + scale_bytes
        want += (n - 1) / n * n * piece + (n - 1) * piece
    return want


def topk_bytes(codec):
    """One step's bytes by the formula: per bucket, (N - 1) x the payload (one allgather)."""
    model, opt = build(codec)
    return sum((hvd.size() - 1) * codec.payload_bytes(b.flat.numel())
               for b in opt._mode_object.engine._sets[0].buckets)


def diloco(compression):
    """DiLoCo (period 2) with its pseudo-gradients through ``compression``: the parameters."""
    model = make_model()
    opt = hvd_ext.DistributedOptimizer(
        torch.optim.SGD(model.parameters(), lr=LR), named_parameters=model.named_parameters(),
        mode=hvd_ext.DiLoCo(period=2, outer_lr=0.7, outer_momentum=0.9),
        compression=compression)
    for t in range(6):
        x, y = batch(t)
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
    opt.flush()
    return flat(model)


def topk_cases(out, sync):
    sparse = hvd_ext.TopK(density=0.1, bits=2, chunk=64)
    out["topk_identity"] = identity(sparse)
    out["delayed_topk_identity"] = identity(hvd_ext.TopK(density=0.05, bits=4, chunk=100),
                                            hvd_ext.Delayed(staleness=1))
    out["topk1_identity"] = identity(hvd_ext.TopK(density=0.2, bits=1, chunk=32))
    dense = train(hvd_ext.TopK(density=1.0, bits=32), record=True)
    out["topk_dense_vs_sync"] = (flat(dense[0]) - flat(sync[0])).abs().max().item()
    out["topk_moved_from_sync"] = rel(flat(train(sparse)[0]), flat(sync[0]))
    out["topk_bytes"] = [train(sparse)[4][-1], topk_bytes(sparse)]
    out["diloco_topk_dense_vs_plain"] = (diloco(hvd_ext.TopK(density=1.0, bits=32))
                                         - diloco(hvd_ext.Compression.none)).abs().max().item()
    out["diloco_topk_moved"] = rel(diloco(sparse), diloco(hvd_ext.Compression.none))


def main():
    hvd.init()
    torch.set_num_threads(1)
    out = {"np": hvd.size()}
    sync = train(hvd_ext.Compression.none, record=True)
    out["powersgd_before_start"] = (flat(train(hvd_ext.PowerSGD(start_step=100))[0])
                                    - flat(sync[0])).abs().max().item()
    full = train(hvd_ext.PowerSGD(rank=64, start_step=0, min_compression_rate=0.01), record=True)
    out["powersgd_full_rank"] = max(rel(a, b) for a, b in zip(full[2], sync[2]))
    low = hvd_ext.PowerSGD(rank=2, start_step=1)
    out["powersgd_overlap"] = (flat(train(low, hvd_ext.Sync(overlap_forward=True))[0])
                               - flat(train(low)[0])).abs().max().item()
    out["powersgd_moved_from_sync"] = rel(flat(train(low)[0]), flat(sync[0]))
    out["powersgd_identity"] = identity(hvd_ext.PowerSGD(rank=1, start_step=0))
    out["delayed_powersgd_identity"] = identity(hvd_ext.PowerSGD(rank=1, start_step=0),
                                                hvd_ext.Delayed(staleness=1))
    out["int8_identity"] = identity(hvd_ext.Quantize(bits=8))
    out["int4_identity"] = identity(hvd_ext.Quantize(bits=4))
    for bits in (8, 4):
        q = train(hvd_ext.Quantize(bits=bits), record=True)
        out[f"int{bits}_vs_sync"] = rel(q[2][0], sync[2][0])
        out[f"int{bits}_bytes"] = [q[4][-1], quantize_bytes(bits)]
    out["powersgd_bytes"] = [train(hvd_ext.PowerSGD(rank=2, start_step=0))[4][-1],
                             powersgd_bytes(2)]
    topk_cases(out, sync)
    out["sync_bytes"] = [sync[4][-1], 2 * (hvd.size() - 1) / hvd.size() * 4 *
                         sum(p.numel() for p in sync[0].parameters())]
    if hvd.rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
