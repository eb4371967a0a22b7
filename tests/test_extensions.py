"""A new codec and a new mode, each written in this one file with one catalog entry, and nothing
else of the project edited: they train in a 2-rank job (checked against a float64 reference),
the probe measures the codec and the advisor predicts with it, and the throughput harness runs
both by their catalog names (``--plugin`` imports this file).

The codec is sign compression with error feedback (Karimireddy et al. 2019): per tensor k,
m_k = g_k + e_k, c_k = sign(m_k) * mean |m_k|, e_k <- m_k - c_k; each rank's signs (one byte
each) and scales go out in one allgather and the average of the decoded c is applied. The mode
pulls every ``period`` steps each rank's parameters part of the way to the average:
x <- x - weight * (x - mean over ranks of x) (weight 1 is local SGD).

    horovodrun -np 2 python tests/test_extensions.py OUT.json   # the worker the tests run
"""
import json
import sys
from dataclasses import dataclass

import torch
from horovod.torch.mpi_ops import Average

from horovod_ext import codecs, methods
from horovod_ext.codecs import Codec, Collective
from horovod_ext.modes.averaging import AveragingConfig, AveragingMode


class Sign(Codec):
    name = "sign"

    def new_state(self, view):
        return [torch.zeros(s.numel(), dtype=view.dtype) for s in view.shapes]  # the errors

    def buffers(self, state):
        return state

    def exchange(self, view, prefix, st, step):
        err = view.state
        ms = [v.flatten() + e for v, e in zip(view.views, err)]
        scales = torch.stack([m.abs().mean() for m in ms]).float()
        signs = torch.cat([torch.sign(m) for m in ms]).to(torch.int8)
        for m, e, s in zip(ms, err, scales):
            e.copy_(m - torch.sign(m) * s)
        k = 4 * len(ms)
        piece = torch.empty(1, k + view.numel, dtype=torch.uint8)
        piece[0, :k] = scales.view(torch.uint8)
        piece[0, k:] = signs.view(torch.uint8)
        gathered = yield Collective("allgather", piece, prefix + ".signs")
        total = torch.zeros(view.numel, dtype=torch.float64)
        for row in gathered:
            s = row[:k].clone().view(torch.float32).double()
            sg = row[k:].clone().view(torch.int8).double()
            total += torch.cat([sg[o:o + sh.numel()] * s[i]
                                for i, (o, sh) in enumerate(zip(view.offsets, view.shapes))])
        n = st.process_set.size()
        view.flat[:view.numel].copy_(total / n if st.op == Average else total)

    def save(self, state, k):
        return {"error": state[k].clone()}

    def load(self, state, k, saved):
        state[k].copy_(saved["error"])


@dataclass(frozen=True)
class Pull(AveragingConfig):
    period: int
    weight: float = 0.5
    name = "pull"

    def build(self, optimizer, inner, settings):
        return PullMode(self, optimizer, inner, settings)


class PullMode(AveragingMode):
    def __init__(self, config, optimizer, inner, settings):
        super().__init__(config, optimizer, inner, settings)
        self._means = self._flats.empty()

    def buffers(self):
        return self._means

    def after_inner_step(self):
        if self._t % self.config.period == 0:
            self.sum_params(self._means, "the pull")
            for m in self._means:
                m.div_(self.process_set.size())
            self._flats.pull_params_toward(self._means, self.config.weight)

    def consensus_params(self):
        return self.showing(lambda: None)


# The two catalog entries.
if "sign" not in codecs.NAMED:
    codecs.register("sign", Sign, "sign with error feedback", "Sign()", probe=True)
if "pull" not in methods.MODES:
    methods.register_mode("pull", Pull, {"H": ("period", int), "w": ("weight", float)},
                          ("period",), "pull")


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))


def _batch(step, rank):
    g = torch.Generator().manual_seed(100 * step + rank)
    return torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)


def _train(name, steps, reference):
    """Trains method ``name`` and a float64 twin that ``reference(twin, grads, step)`` updates;
    returns the largest difference of the parameters over the steps."""
    import horovod.torch as hvd

    import horovod_ext as hvd_ext
    model = _model()
    twin = _model().double()
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                       named_parameters=model.named_parameters(),
                                       **methods.parse(name).kwargs())
    worst = 0.0
    for step in range(1, steps + 1):
        x, y = _batch(step, hvd.rank())
        twin.zero_grad()
        torch.nn.functional.cross_entropy(twin(x.double()), y).backward()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        with torch.no_grad():
            reference(twin, [p.grad for p in twin.parameters()], step)
        worst = max(worst, max((p.double() - q).abs().max().item()
                               for p, q in zip(model.parameters(), twin.parameters())))
    return worst, opt.bytes_sent


def _sign_reference(errors):
    def update(twin, grads, step):
        import horovod.torch as hvd
        for k, (p, g) in enumerate(zip(twin.parameters(), grads)):
            m = g + errors.setdefault(k, torch.zeros_like(g))
            c = torch.sign(m) * m.abs().mean().float().double()
            errors[k] = m - c
            p -= 0.1 * hvd.allgather(c.unsqueeze(0), name=f"ref.sign.{step}.{k}").mean(0)
    return update


def _pull_reference(twin, grads, step):
    import horovod.torch as hvd
    for k, (p, g) in enumerate(zip(twin.parameters(), grads)):
        p -= 0.1 * g
        if step % 2 == 0:
            mean = hvd.allgather(p.detach().clone().unsqueeze(0), name=f"ref.pull.{step}.{k}")
            p -= 0.5 * (p - mean.mean(0))


def main(out):
    import horovod.torch as hvd

    import horovod_ext as hvd_ext
    from horovod_ext.advisor import recommend
    hvd.init()
    torch.set_num_threads(1)
    sign_diff, sign_bytes = _train("sync+sign", 6, _sign_reference({}))
    pull_diff, _ = _train("pull-H2-w0.5", 6, _pull_reference)
    model = _model()
    inner = torch.optim.SGD(model.parameters(), lr=0.1)

    def closure():
        x, y = _batch(0, hvd.rank())
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    trace = hvd_ext.probe(model, inner, closure, batch_size=8, steps=3)
    rec = recommend.recommendation(trace, extra=["sync+sign"])
    if hvd.rank() == 0:
        with open(out, "w") as f:
            json.dump(dict(sign_diff=sign_diff, sign_bytes=sign_bytes, pull_diff=pull_diff,
                           trace=trace, row=rec["rows"]["sync+sign"], best=rec["best"]), f)


def test_a_new_codec_and_mode_train_and_the_probe_measures_the_codec(tmp_path):
    from conftest import launch
    out = tmp_path / "out.json"
    launch("tests/test_extensions.py", 2, "gloo", [str(out)], timeout=300)
    got = json.loads(out.read_text())
    assert got["sign_diff"] < 1e-5, got["sign_diff"]   # the codec's update, step by step
    assert got["pull_diff"] < 1e-5, got["pull_diff"]   # the mode's rounds
    params = sum(p.numel() for p in _model().parameters())
    # per step: one allgather of (4 bytes per tensor + 1 byte per element) to the other rank
    assert got["sign_bytes"] == 6 * (4 * 4 + params)
    t = got["trace"]
    assert t["codec_ms"]["sign"] > 0 and t["exposed_ms"]["sign"] >= 0
    c = t["compute_ms"]
    assert abs(got["row"]["step_ms"] - (c["forward_backward"] + c["optimizer_step"]
                                        + t["codec_ms"]["sign"] + c["pack_unpack"]
                                        + t["exposed_ms"]["sign"])) < 1e-9
    assert got["row"]["how"] == "Sync(), compression=Sign()"
    assert got["best"] != "sync+sign"  # nothing measured of its steps to a loss


def test_the_catalog_names_them():
    m = methods.parse("pull-H4-w0.25+sign")
    kw = m.kwargs()
    assert kw["mode"] == Pull(period=4, weight=0.25) and isinstance(kw["compression"], Sign)
    assert methods.label("pull-H4-w0.25+sign") == "pull, period 4, weight 0.25, sign with error feedback"
    try:
        methods.parse("pull-w0.5")
    except ValueError as e:
        assert "pull needs period" in str(e)
    else:
        raise AssertionError("a pull without its period parsed")


def test_the_throughput_harness_runs_them_by_name(tmp_path):
    from conftest import launch
    out = tmp_path / "tp.json"
    launch("benchmarks/throughput.py", 2, "gloo",
           ["--model", "mlp", "--modes", "horovod,sync+sign,pull-H2-w0.5", "--steps", "4",
            "--rounds", "2", "--warmup", "1", "--plugin", __file__, "--json", str(out)],
           timeout=300)
    rows = {r["mode"]: r for r in json.loads(out.read_text())["results"]}
    assert {"sync+sign", "pull-H2-w0.5"} <= set(rows)
    assert all(rows[n]["step_ms"] > 0 for n in ("sync+sign", "pull-H2-w0.5"))


if __name__ == "__main__":
    main(sys.argv[1])
