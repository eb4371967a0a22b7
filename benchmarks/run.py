"""Runs the throughput benchmark on an emulated cluster: every rank's traffic crosses one loopback
link rate-limited with `tc ... tbf` inside a network namespace this script creates and always
removes (also on Ctrl-C and errors).

    python benchmarks/run.py --np 2 --rate 1gbit --model cnn --modes horovod,sync,delayed --steps 30 --json out.json

--sweep runs every combination of --rates x --models x --nps (one namespace per rate), writes
one JSON per run under results/sweep/, a PNG of speedup over Horovod versus rate per model, and
prints the README table.

--rate none runs unshaped. A rate needs root and iproute2 (ip, tc); without them the script stops
with a clear message, or, with --allow-unshaped, warns and runs unshaped. --mpi launches with
mpirun instead of horovodrun --gloo. Any other argument goes to benchmarks/throughput.py.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def shaping_problem():
    """Why the link cannot be shaped here, or None."""
    if os.geteuid() != 0:
        return "shaping the link needs root (network namespaces and tc)"
    missing = [b for b in ("ip", "tc") if shutil.which(b) is None]
    if missing:
        return f"shaping the link needs iproute2 ({', '.join(missing)} not found: apt-get install iproute2)"
    return None


class Namespace:
    """A network namespace whose loopback is limited to `rate`; removed on exit, whatever happens."""

    def __init__(self, rate):
        self.name, self.rate = f"hvdext-{os.getpid()}", rate

    def __enter__(self):
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        try:
            self.exec(["ip", "link", "set", "lo", "up"])
            self.exec(["tc", "qdisc", "replace", "dev", "lo", "root", "tbf", "rate", self.rate,
                       "burst", "512kb", "latency", "100ms"])
        except BaseException:
            self.__exit__()
            raise
        return self

    def exec(self, cmd, **kw):
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], check=True, **kw)

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def launch_command(args, rest):
    bin_dir = os.path.dirname(sys.executable)
    bench = [sys.executable, os.path.join(HERE, "throughput.py"), "--model", args.model,
             "--modes", args.modes, "--steps", str(args.steps), "--json", args.json, *rest]
    if args.mpi:
        return ["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", str(args.np),
                "-x", "OMP_NUM_THREADS", *bench]
    return [os.path.join(bin_dir, "horovodrun"), "--gloo", "-np", str(args.np), *bench]


def run_once(args, rest, rate, env, json_path):
    """One benchmark launch at `rate` (None: unshaped); returns its exit code."""
    cmd = launch_command(argparse.Namespace(**{**vars(args), "json": json_path}), rest)
    if rate is None:
        return subprocess.run(cmd, env=env).returncode
    with Namespace(rate) as ns:
        print(f"network namespace {ns.name}: loopback limited to {rate}", flush=True)
        return subprocess.run(["ip", "netns", "exec", ns.name, *cmd], env=env).returncode


def sweep(args, rest, env):
    import json
    out_dir = os.path.join(os.path.dirname(os.path.abspath(args.json)), "sweep")
    os.makedirs(out_dir, exist_ok=True)
    runs = []
    for rate in args.rates.split(","):
        for model in args.models.split(","):
            for n in (int(v) for v in args.nps.split(",")):
                path = os.path.join(out_dir, f"{rate}_{model}_np{n}.json")
                a = argparse.Namespace(**{**vars(args), "model": model, "np": n})
                rc = run_once(a, rest, None if rate == "none" else rate, env, path)
                if rc != 0:
                    sys.exit(f"error: the run at rate {rate}, model {model}, {n} ranks failed")
                with open(path) as f:
                    runs.append(dict(rate=rate, model=model, np=n, **json.load(f)))
    with open(os.path.join(out_dir, "sweep.json"), "w") as f:
        json.dump(runs, f, indent=1)
    plot_sweep(runs, os.path.join(out_dir, "sweep.png"))
    modes = [r["mode"] for r in runs[0]["results"]]
    print("| rate | model | ranks | T_compute | T_allreduce | " + " | ".join(modes) + " |")
    print("|---" * (5 + len(modes)) + "|")
    for r in runs:
        cells = [f"{x['step_ms']:.0f} ms ({x['vs_horovod']:.2f}x, eff {x['efficiency']:.2f})"
                 for x in r["results"]]
        print(f"| {r['rate']} | {r['model']} | {r['np']} | {r['compute_ms']:.0f} ms | "
              f"{r['allreduce_ms']:.0f} ms | " + " | ".join(cells) + " |")


def plot_sweep(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = sorted({r["model"] for r in runs})
    rates = list(dict.fromkeys(r["rate"] for r in runs))
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        for n in sorted({r["np"] for r in runs}):
            sel = {r["rate"]: r for r in runs if r["model"] == model and r["np"] == n}
            for mode in [m["mode"] for m in runs[0]["results"]][1:]:
                ys = [next(x["vs_horovod"] for x in sel[rt]["results"] if x["mode"] == mode)
                      for rt in rates if rt in sel]
                ax.plot([rt for rt in rates if rt in sel], ys, "o-", label=f"{mode}, {n} ranks")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set(title=model, xlabel="link rate", ylabel="speedup over Horovod")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _interrupt(*_):
    """SIGTERM becomes KeyboardInterrupt, so the namespace is removed as on Ctrl-C."""
    raise KeyboardInterrupt


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--np", type=int, default=2)
    p.add_argument("--rate", default="1gbit", help="tc rate of the shared link, e.g. 1gbit, 10gbit, or none")
    p.add_argument("--model", default="cnn")
    p.add_argument("--modes", default="horovod,sync,delayed")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--json", default="results/throughput.json")
    p.add_argument("--mpi", action="store_true", help="launch with mpirun instead of horovodrun --gloo")
    p.add_argument("--sweep", action="store_true", help="run --rates x --models x --nps")
    p.add_argument("--rates", default="10gbit,1gbit,none")
    p.add_argument("--models", default="cnn,resnet,lm,mlp")
    p.add_argument("--nps", default="2,4")
    p.add_argument("--allow-unshaped", action="store_true",
                   help="if the link cannot be shaped here, warn and run unshaped")
    args, rest = p.parse_known_args()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    signal.signal(signal.SIGTERM, _interrupt)
    rate = None if args.rate == "none" else args.rate
    if args.sweep:
        if shaping_problem():
            sys.exit(f"error: {shaping_problem()}; the sweep needs shaped links")
        return sweep(args, rest, env)
    if rate is not None:
        problem = shaping_problem()
        if problem and not args.allow_unshaped:
            sys.exit(f"error: {problem}; use --rate none, or --allow-unshaped to run unshaped")
        if problem:
            print(f"WARNING: {problem}; running UNSHAPED", file=sys.stderr)
            rate = None
    sys.exit(run_once(args, rest, rate, env, args.json))


if __name__ == "__main__":
    main()
