"""Runs the throughput benchmark on an emulated cluster: every rank's traffic crosses one loopback
link rate-limited with `tc ... tbf` inside a network namespace this script creates and always
removes (also on Ctrl-C and errors).

    python benchmarks/run.py --np 2 --rate 1gbit --model cnn --modes horovod,sync,delayed --steps 30 --json out.json

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
    p.add_argument("--allow-unshaped", action="store_true",
                   help="if the link cannot be shaped here, warn and run unshaped")
    args, rest = p.parse_known_args()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = launch_command(args, rest)
    rate = None if args.rate == "none" else args.rate
    if rate is not None:
        problem = shaping_problem()
        if problem and not args.allow_unshaped:
            sys.exit(f"error: {problem}; use --rate none, or --allow-unshaped to run unshaped")
        if problem:
            print(f"WARNING: {problem}; running UNSHAPED", file=sys.stderr)
            rate = None
    signal.signal(signal.SIGTERM, _interrupt)
    if rate is None:
        sys.exit(subprocess.run(cmd, env=env).returncode)
    with Namespace(rate) as ns:
        print(f"network namespace {ns.name}: loopback limited to {rate}", flush=True)
        rc = subprocess.run(["ip", "netns", "exec", ns.name, *cmd], env=env).returncode
    sys.exit(rc)


if __name__ == "__main__":
    main()
