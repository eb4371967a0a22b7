"""The emulated cluster the benchmarks run in: a network namespace whose loopback is limited to a
rate (``Namespace``: one link every rank shares), or one namespace per host linked to a bridge by
rate-limited veth pairs (``Switch``); each removed on exit, whatever happens. Shaping needs root
and iproute2 (``shaping_problem`` says why not)."""
import os
import shutil
import socket
import subprocess
import sys

from benchmarks import entry


def shaping_problem():
    """Why the link cannot be shaped here, or None."""
    if os.geteuid() != 0:
        return "shaping the link needs root (network namespaces and tc)"
    missing = [b for b in ("ip", "tc") if shutil.which(b) is None]
    if missing:
        return f"shaping the link needs iproute2 ({', '.join(missing)} not found: apt-get install iproute2)"
    return None


def tbf(dev, rate):
    """The tc command that limits what leaves `dev` to `rate`."""
    return ["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", "512kb",
            "latency", "100ms"]


class Namespace:
    """A network namespace whose loopback is limited to `rate`; removed on exit, whatever happens."""

    def __init__(self, rate):
        self.name, self.rate = f"hvdext-{os.getpid()}", rate

    def __enter__(self):
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        try:
            self.exec(["ip", "link", "set", "lo", "up"])
            self.exec(tbf("lo", self.rate))
        except BaseException:
            self.__exit__()
            raise
        return self

    def exec(self, cmd, **kw):
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], check=True, **kw)

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.name], check=False)


class Switch:
    """One namespace per host, each linked to a bridge in a switch namespace by a pair of devices
    whose two ends are limited to `rate` (host uplink and downlink): a veth pair, or with
    ``delay_ms`` two TAP devices with the delay line between them (delay_line.py), which holds
    each frame delay_ms / 2 on each side, so delay_ms one way from host to host. Removed on exit,
    whatever happens."""

    SUBNET, SWITCH_IP = "10.77.0.{}", "10.77.0.254"

    def __init__(self, hosts, rate, delay_ms=0.0):
        tag = f"hvdext-{os.getpid()}"
        self.name, self.rate, self.delay_ms = f"{tag}-sw", rate, delay_ms
        self.hosts = [f"{tag}-h{k}" for k in range(hosts)]
        self.line = None  # the delay line's process
        self.line_stats = f"/tmp/{tag}-delay-line.json"

    def __enter__(self):
        made = [self.name]
        try:
            subprocess.run(["ip", "netns", "add", self.name], check=True)
            sw = ["ip", "netns", "exec", self.name]
            for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "link", "add", "br0", "type", "bridge"],
                        ["ip", "addr", "add", f"{self.SWITCH_IP}/24", "dev", "br0"],
                        ["ip", "link", "set", "br0", "up"]):
                subprocess.run(sw + cmd, check=True)
            for k, host in enumerate(self.hosts):
                subprocess.run(["ip", "netns", "add", host], check=True)
                made.append(host)
                # Horovod 0.28.1 builds the Gloo context of a process set on the address this
                # machine's name resolves to (not HOROVOD_GLOO_IFACE): `ip netns exec` reads
                # /etc/netns/<ns>/hosts as /etc/hosts, so inside each host it is that host's.
                os.makedirs(f"/etc/netns/{host}", exist_ok=True)
                with open(f"/etc/netns/{host}/hosts", "w") as f:
                    f.write(f"127.0.0.1 localhost\n{self.SUBNET.format(k + 1)} {socket.gethostname()}\n")
                if not self.delay_ms:
                    subprocess.run(sw + ["ip", "link", "add", f"port{k}", "type", "veth", "peer",
                                         "name", "eth0", "netns", host], check=True)
            if self.delay_ms:
                self._start_line()
            for k, host in enumerate(self.hosts):
                h = ["ip", "netns", "exec", host]
                port = f"port{k}"
                for cmd in (sw + ["ip", "link", "set", port, "master", "br0"],
                            sw + ["ip", "link", "set", port, "up"],
                            sw + tbf(port, self.rate),
                            h + ["ip", "addr", "add", f"{self.SUBNET.format(k + 1)}/24", "dev", "eth0"],
                            h + ["ip", "link", "set", "eth0", "up"],
                            h + ["ip", "link", "set", "lo", "up"],
                            h + tbf("eth0", self.rate)):
                    subprocess.run(cmd, check=True)
        except BaseException:
            self.remove(made)
            raise
        return self

    def _start_line(self):
        pairs = [f"{host}:eth0:{self.name}:port{k}" for k, host in enumerate(self.hosts)]
        self.line = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.delay_line", "--delay-ms", str(self.delay_ms / 2),
             "--stats", self.line_stats, *pairs], stdout=subprocess.PIPE, text=True)
        if self.line.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the delay line did not start (exit code {self.line.wait()})")

    def remove(self, names):
        if self.line is not None:  # its devices go with it
            self.line.terminate()
            self.line.wait()
            self.line = None
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)
            shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)

    def __exit__(self, *exc):
        self.remove([self.name, *self.hosts])


def switched_args(delay_ms):
    """run.py's arguments for a link with ``delay_ms`` one way: a switched network, a rank a
    host (none without a delay)."""
    return ["--switched", "--delay-ms", f"{delay_ms:g}"] if delay_ms else []


def run_under(rate, delay_ms, np, cmd, env):
    """Runs the horovodrun command ``cmd`` of ``np`` ranks under a link: in a namespace whose
    loopback is limited to ``rate``, on a switched network with ``delay_ms`` one way between the
    ranks (run.py's launch_switched, a rank a host), or unshaped (``rate`` "none")."""
    if rate == "none":
        subprocess.run(cmd, env=env, check=True)
    elif delay_ms:
        with Switch(np, rate, delay_ms) as sw:
            subprocess.run(["ip", "netns", "exec", sw.name, *entry("run"), "--launch-switched",
                            ",".join(sw.hosts), "--ranks-per-host", "1", "--",
                            *cmd[cmd.index(sys.executable):]], env=env, check=True)
    else:
        with Namespace(rate) as ns:
            subprocess.run(["ip", "netns", "exec", ns.name, *cmd], env=env, check=True)
