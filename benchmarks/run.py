"""Runs the throughput benchmark on an emulated cluster: every rank's traffic crosses one loopback
link rate-limited with `tc ... tbf` inside a network namespace this script creates and always
removes (also on Ctrl-C and errors).

    python -m benchmarks.run --np 2 --rate 1gbit --model cnn --modes horovod,sync,delayed --steps 30 --json out.json

--sweep runs every combination of --rates x --models x --nps (one namespace per rate), writes
one JSON per run under results/sweep/, a PNG of speedup over Horovod versus rate per model, and
prints the README table.

--switched gives every host its own namespace instead, linked to a bridge (in a namespace of its
own) by a veth pair rate-limited in both directions: a switched network, where each host's link
carries only its own traffic, rather than one link shared by every rank. --ranks-per-host (1)
ranks share a host and talk over its unshaped loopback. The addresses (10.77.0.0/24) exist only
inside these namespaces, and every namespace is removed afterwards. Ranks are started directly
with Horovod's Gloo rendezvous, run from the switch's namespace.

--delay-ms D (with --switched) adds D ms one way from host to host: each host's pair of devices
is two TAP devices with a userspace delay line between them (delay_line.py; this kernel has no
netem), the rate still limited by tbf on both ends.

--rate none runs unshaped. A rate needs root and iproute2 (ip, tc); without them the script stops
with a clear message, or, with --allow-unshaped, warns and runs unshaped. --mpi launches with
mpirun instead of horovodrun --gloo. Any other argument goes to benchmarks/throughput.py.
"""
import argparse
import json
import os
import signal
import subprocess
import sys

from benchmarks import autotune_peer, entry
from benchmarks.cluster import Namespace, Switch, shaping_problem
from benchmarks.sweep_report import report


def launch_switched(hosts, ranks_per_host, cmd):
    """Runs in the switch's namespace: Horovod's Gloo rendezvous server there, and every rank in
    its host's namespace with the environment horovodrun would give it. Returns the first
    non-zero exit code (the other ranks are then stopped), or 0."""
    import time

    from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts
    from horovod.runner.gloo_run import create_run_env_vars, create_slot_env_vars
    from horovod.runner.http.http_server import RendezvousServer
    addresses = {Switch.SUBNET.format(k + 1): ns for k, ns in enumerate(hosts)}
    plan = get_host_assignments(parse_hosts(",".join(f"{a}:{ranks_per_host}" for a in addresses)),
                                len(hosts) * ranks_per_host)
    server = RendezvousServer()
    port = server.start()
    server.init(plan)
    procs = []
    try:
        for slot in plan:
            env = dict(os.environ, **{k: str(v) for k, v in create_run_env_vars(
                Switch.SWITCH_IP, ["eth0"], port).items()}, **create_slot_env_vars(slot))
            procs.append(subprocess.Popen(["ip", "netns", "exec", addresses[slot.hostname], *cmd],
                                          env=env))
        while all(p.poll() in (None, 0) for p in procs) and any(p.poll() is None for p in procs):
            time.sleep(0.2)
        return next((p.returncode for p in procs if p.returncode), 0)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
        server.stop()


def launch_command(args, rest):
    bin_dir = os.path.dirname(sys.executable)
    bench = [*entry("throughput"), "--model", args.model,
             "--modes", args.modes, "--steps", str(args.steps), "--json", args.json, *rest]
    if args.mpi:
        return ["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", str(args.np),
                "-x", "OMP_NUM_THREADS", *bench]
    return [os.path.join(bin_dir, "horovodrun"), "--gloo", "-np", str(args.np), *bench]


def run_once(args, rest, rate, env, json_path):
    """One benchmark at `rate` (None: unshaped); returns its exit code. horovod-autotune runs as
    a second job of its own (autotune_peer.py), merged into the first's JSON."""
    modes, autotune = autotune_peer.split(args.modes)
    rc = launch_once(argparse.Namespace(**{**vars(args), "modes": modes}), rest, rate, env,
                     json_path)
    if rc != 0 or not autotune:
        return rc
    modes, extra, job_env, own_path = autotune_peer.job(json_path)
    rc = launch_once(argparse.Namespace(**{**vars(args), "modes": modes}), [*rest, *extra],
                     rate, dict(env, **job_env), own_path)
    if rc == 0:
        r = autotune_peer.merge(json_path, own_path)
        print(f"{autotune_peer.NAME}: median step {r['step_ms']:.1f} ms, vs best peer "
              f"{r['vs_best_peer']:.2f}x {r['vs_best_peer_ci95']} (own job)", flush=True)
    return rc


def launch_once(args, rest, rate, env, json_path):
    """One launch of throughput.py at `rate`; returns its exit code."""
    link = "unshaped" if rate is None else (f"{rate} switched" if args.switched else rate)
    if args.delay_ms and rate is not None:
        link += f", {args.delay_ms:g} ms one way"
    cmd = launch_command(argparse.Namespace(**{**vars(args), "json": json_path}),
                         [*rest, "--link", link])
    if args.switched and rate is not None:
        hosts, extra = divmod(args.np, args.ranks_per_host)
        if extra:
            sys.exit(f"error: --np {args.np} is not a multiple of --ranks-per-host {args.ranks_per_host}")
        with Switch(hosts, rate, args.delay_ms) as sw:
            print(f"switched network: {hosts} hosts of {args.ranks_per_host} rank(s), each link "
                  f"limited to {rate} each way, {args.delay_ms:g} ms one way from host to host",
                  flush=True)
            bench = cmd[cmd.index(sys.executable):]
            return subprocess.run(["ip", "netns", "exec", sw.name, *entry("run"),
                                   "--launch-switched", ",".join(sw.hosts),
                                   "--ranks-per-host", str(args.ranks_per_host), "--", *bench],
                                  env=env).returncode
    if rate is None:
        return subprocess.run(cmd, env=env).returncode
    with Namespace(rate) as ns:
        print(f"network namespace {ns.name}: loopback limited to {rate}", flush=True)
        return subprocess.run(["ip", "netns", "exec", ns.name, *cmd], env=env).returncode


def sweep(args, rest, env):
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
    report(runs, out_dir)


def _interrupt(*_):
    """SIGTERM becomes KeyboardInterrupt, so the namespace is removed as on Ctrl-C."""
    raise KeyboardInterrupt


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--np", type=int, default=2)
    p.add_argument("--rate", default="1gbit", help="tc rate of the shared link, e.g. 1gbit, 10gbit, or none")
    p.add_argument("--model", default="cnn")
    p.add_argument("--modes", default="horovod,horovod-tuned,ddp,sync,delayed")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--json", default="results/throughput.json")
    p.add_argument("--mpi", action="store_true", help="launch with mpirun instead of horovodrun --gloo")
    p.add_argument("--sweep", action="store_true", help="run --rates x --models x --nps")
    p.add_argument("--rates", default="10gbit,1gbit,none")
    p.add_argument("--models", default="cnn,resnet,lm,mlp")
    p.add_argument("--nps", default="2,4")
    p.add_argument("--switched", action="store_true",
                   help="a namespace per host, each with its own rate-limited link to a bridge")
    p.add_argument("--ranks-per-host", type=int, default=1)
    p.add_argument("--delay-ms", type=float, default=0.0,
                   help="one-way delay from host to host (with --switched): the delay line "
                        "(delay_line.py) between TAP devices, the rate still tbf's")
    p.add_argument("--launch-switched", help=argparse.SUPPRESS)  # internal: see launch_switched
    p.add_argument("--allow-unshaped", action="store_true",
                   help="if the link cannot be shaped here, warn and run unshaped")
    args, rest = p.parse_known_args()
    if args.launch_switched:
        sys.exit(launch_switched(args.launch_switched.split(","), args.ranks_per_host,
                                 rest[1:] if rest[:1] == ["--"] else rest))
    if args.switched and args.mpi:
        sys.exit("error: --switched starts the ranks with Gloo; drop --mpi")
    if args.delay_ms and not args.switched or args.delay_ms < 0:
        sys.exit(f"error: --delay-ms {args.delay_ms:g} needs --switched and a value >= 0 (the "
                 f"shared loopback cannot be delayed)")
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
