"""Time to a target validation loss on an emulated link, for every method: the peers (Horovod,
tuned Horovod, Horovod + fp16, DDP, DDP + fp16, DDP + PowerSGD) and ours (sync, sync + fp16,
delayed, delayed + fp16, PowerSGD, int8, DiLoCo, local SGD), on the character-level text model
of benchmarks/science (models.TEXT_SHAPE) trained with AdamW on real text.

    python -m benchmarks.time_to_loss --np 2 --rate 100mbit --methods sync,diloco-H32,ddp-powersgd --seeds 0,1 --json out.json

Steps to a loss do not depend on the link, so: (1) every method's training math runs once per
learning rate and seed, unshaped (science/diloco_text.py: the learning rate of each method is
the one of --lrs with the lowest validation loss at the end; --train-json keeps the curves and
is reused by every rate); (2) every method's mean step time at --rate comes from the throughput
harness (run.py --model chars, rounds of 32 steps: whole periods of DiLoCo and local SGD);
(3) time to target = steps to target x step time, and bytes to target are what the training
sent until then. The target is the validation loss sync reaches at --target-step (the mean over
seeds). Validation runs every --eval-every steps, so a step to target is a multiple of it.
(4) --check METHOD trains that method end-to-end under the link and gives its measured seconds
to target beside the product's. Writes the JSON, a PNG of validation loss against wall-clock
(one line per method) and prints the table (ttl_report.py).
"""
import argparse
import json
import os
import subprocess
import sys

from benchmarks import entry, optimizers, peers
from benchmarks.cluster import run_under, shaping_problem, switched_args
from benchmarks.models import TEXT_SHAPE
from benchmarks.record import provenance
from benchmarks.ttl_report import combine, ours_by_time, plot, same_method, table
from horovod_ext import methods as catalog
from horovod_ext.advisor import recommend

# method -> (its training run in science/diloco_text.py, its optimizer in the throughput
# harness, a peer). A peer trains as the method of ours with the same math (peers.REGISTRY:
# ``trains``) or on its own, and is timed as itself; a method of ours (the advisor's candidates)
# is trained and timed by its catalog name, so both mean the same settings.
METHODS = {**{name: (p.trains or name, name, True) for name, p in peers.REGISTRY.items()},
           **{name: (m, m, False) for name, m in recommend.CANDIDATES.items()}}
PROXIED = tuple(n for n, p in peers.REGISTRY.items() if p.trains)  # trained as one of ours


def spec(name):
    """``METHODS[name]``, or for any other method of the catalog (diloco-H32-f2-t1-a0.5+topk)
    itself, trained and timed by that name; None for a name that is neither."""
    if name in METHODS:
        return METHODS[name]
    try:
        catalog.parse(name)
    except ValueError:
        return None
    return name, name, False
ROUND_STEPS = 32  # steps per timed round: whole periods of every periodic method
WINNERS = "winners"  # --check: the fastest of ours and the fastest peer


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--np", type=int, default=2)
    p.add_argument("--rate", default="100mbit", help="the emulated link (run.py), or none")
    p.add_argument("--delay-ms", type=float, default=0.0,
                   help="one-way delay from rank to rank: each rank a host of a switched "
                        "network (run.py --switched) with the delay line between them")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--lrs", default="0.001,0.003,0.01", help="the grid, the same for every method")
    p.add_argument("--steps", type=int, default=1024, help="training steps of every run")
    p.add_argument("--target-step", type=int, default=512,
                   help="the target is sync's validation loss at this step")
    p.add_argument("--eval-every", type=int, default=32)
    p.add_argument("--batch", type=int, default=32, help="per rank")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds of the step times")
    p.add_argument("--train-json", default=None,
                   help="the training curves (default: beside --json); reused when it exists "
                        "with the same training settings")
    p.add_argument("--check", default="", help="comma-separated methods run end-to-end under "
                                               "the link to check the product; 'winners': the "
                                               "fastest of ours and the fastest peer")
    p.add_argument("--reuse-step-times", action="store_true",
                   help="take the step times stored beside --json (a run at the same link) "
                        "instead of timing again: to add end-to-end checks afterwards")
    p.add_argument("--recombine", action="store_true",
                   help="run nothing: rebuild --json from the curves, step times and checks "
                        "stored beside it")
    p.add_argument("--json", default="results/time_to_loss.json")
    args = p.parse_args(argv)
    checked = [] if args.check == WINNERS else [c for c in args.check.split(",") if c]
    unknown = [m for m in args.methods.split(",") + checked if spec(m) is None]
    if unknown:
        p.error(f"--methods/--check: unknown method(s) {unknown}; known: {', '.join(METHODS)} "
                f"and every method of the catalog (horovod_ext.methods)")
    proxied = [c for c in checked if c in PROXIED]
    if proxied:
        p.error(f"--check: {proxied} train as one of ours; check that one instead")
    if "sync" not in args.methods.split(","):
        p.error("--methods must include sync: the target is the loss it reaches")
    if not 0 < args.target_step <= args.steps or args.target_step % args.eval_every:
        p.error(f"--target-step must be a multiple of --eval-every ({args.eval_every}) in "
                f"(0, --steps]; got {args.target_step}")
    if args.delay_ms < 0 or args.delay_ms and args.rate == "none":
        p.error(f"--delay-ms must be >= 0 and needs a --rate; got {args.delay_ms:g} with --rate "
                f"{args.rate}")
    if args.rate != "none" and shaping_problem():
        p.error(f"--rate {args.rate}: {shaping_problem()}; use --rate none")
    args.train_json = args.train_json or os.path.splitext(args.json)[0] + "_train.json"
    return args


def horovodrun(np_, cmd):
    return [os.path.join(os.path.dirname(sys.executable), "horovodrun"), "--gloo", "-np",
            str(np_), sys.executable, *cmd]


def train_command(args, methods, seeds, lrs, out):
    curves = sorted({spec(m)[0] for m in methods})
    return horovodrun(args.np, [
        "-m", "benchmarks.science.diloco_text", "--methods", ",".join(curves),
        "--steps", str(args.steps), "--eval-every", str(args.eval_every), "--batch",
        str(args.batch), "--lrs", lrs, "--seeds", seeds, "--json", out,
        "--hidden-layers", str(TEXT_SHAPE["hidden_layers"]), "--width", str(TEXT_SHAPE["width"])])


def _same(stored, name, harness):
    """Whether a stored part's ``stored`` name is method ``name``: earlier names read through the
    catalog (``powersgd_r4`` is ``sync+powersgd-r4``), the harness's through its table."""
    return same_method(optimizers.METHODS.get(stored, stored) if harness else stored, name)


def _named(stored, names, harness=False):
    """The name of ``names`` that a stored part's name means (itself when none does)."""
    return next((n for n in names if n == stored), None) \
        or next((n for n in names if _same(stored, n, harness)), stored)


def _rekey(stored, names):
    """``stored`` (name -> part) under the names of ``names`` that mean the same methods."""
    return {_named(k, names): v for k, v in stored.items()}


def train(args, methods, env):
    """The training curves, from --train-json when it holds these settings; the methods it
    lacks (or holds with other seeds) are trained and added to it."""
    want = dict(ranks=args.np, steps=args.steps, batch=args.batch,
                lrs=[float(v) for v in args.lrs.split(",")], **TEXT_SHAPE)
    seeds = [int(s) for s in args.seeds.split(",")]
    need = {spec(m)[0] for m in methods}
    have = None
    if args.recombine or os.path.exists(args.train_json):
        with open(args.train_json) as f:
            have = json.load(f)
        have["methods"] = _rekey(have["methods"], need)
        if args.recombine:
            return have
        if not all(have.get(k) == v for k, v in want.items()):
            have = None  # other settings: train every method anew
    lacking = [m for m in methods if have is None or spec(m)[0] not in have["methods"] or
               [r["seed"] for r in have["methods"][spec(m)[0]]["runs"]] != seeds]
    if not lacking:
        return have
    part = os.path.splitext(args.train_json)[0] + "_part.json"
    subprocess.run(train_command(args, lacking, args.seeds, args.lrs, part), env=env,
                   check=True)
    with open(part) as f:
        trained = json.load(f)
    os.remove(part)
    for curve in trained["methods"].values():  # where each was trained, kept through merges
        curve.setdefault("provenance", trained.get("config", {}).get("provenance"))
    if have is not None:
        trained["methods"] = {**have["methods"], **trained["methods"]}
    with open(args.train_json, "w") as f:
        json.dump(trained, f, indent=1)
    return trained


def step_times(args, methods, env):
    """The throughput harness's JSON at --rate for these methods' modes."""
    out = os.path.splitext(args.json)[0] + "_steps.json"
    modes = ",".join(dict.fromkeys(["horovod"] + [spec(m)[1] for m in methods]))  # its base
    if not (args.recombine or args.reuse_step_times):
        subprocess.run([*entry("run"), "--np", str(args.np),
                        "--rate", args.rate, *switched_args(args.delay_ms), "--model", "chars", "--modes", modes,
                        "--steps", str(ROUND_STEPS), "--rounds", str(args.rounds), "--warmup",
                        "3", "--json", out], env=env, check=True)
    with open(out) as f:
        timed = json.load(f)
    names = ["horovod"] + [spec(m)[1] for m in methods]
    for r in timed["results"]:
        r["mode"] = _named(r["mode"], names, harness=True)
    return timed


def under_link(args, cmd, env):
    """Runs the horovodrun command ``cmd`` under --rate and --delay-ms (cluster.run_under)."""
    run_under(args.rate, args.delay_ms, args.np, cmd, env)


def check(args, name, trained, env):
    """Trains ``name`` at its chosen rate and first seed under the link, end to end; returns
    its curve (step, validation loss, bytes, training seconds)."""
    curve = spec(name)[0]
    run = trained["methods"][curve]
    out = os.path.splitext(args.json)[0] + f"_check_{name}.json"
    if not args.recombine:
        under_link(args, train_command(args, [name], str(run["runs"][0]["seed"]),
                                            str(run["lr"]), out), env)
    with open(out) as f:
        return _rekey(json.load(f)["methods"], [curve])[curve]["runs"][0]["curve"]


def winners(out):
    """The methods to check end to end: the fastest of ours and the fastest peer to the target
    (a peer that trains as one of ours is checked as that one)."""
    picks = ours_by_time(out)[:1]
    if out["best_peer"] is not None:
        peer = out["best_peer"]
        picks.append(peers.REGISTRY[peer].trains or peer)
    return list(dict.fromkeys(picks))


def main(argv=None):
    args = parse_args(argv)
    methods = args.methods.split(",")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    trained = train(args, methods, env)
    timed = step_times(args, methods, env)
    specs = {m: spec(m) for m in methods}
    names = winners(combine(args, specs, trained, timed, {})) if args.check == WINNERS else \
        [m for m in args.check.split(",") if m]
    checks = {m: check(args, m, trained, env) for m in names}
    out = combine(args, specs, trained, timed, checks)
    # where this JSON was written; each part keeps where it was measured (out["provenance"])
    out["config"]["recombined_with" if args.recombine else "provenance"] = provenance()
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    plot(out, os.path.splitext(args.json)[0] + ".png")
    print(table(out))


if __name__ == "__main__":
    main()
