"""Measures the emulated links with latency: two hosts on a switched network (cluster.Switch, the
delay line between TAP devices), the round trip of a UDP echo (median of 8), the TCP throughput
from one host to the other over 6 s, and the CPU the delay line took, per cell.

    python -m benchmarks.link_check --cells 100mbit:20,1gbit:5 --json docs/results/link_check.json
"""
import argparse
import json
import subprocess
import sys
import time

from benchmarks.cluster import Switch, shaping_problem
from benchmarks.record import stored_config

ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5202))
while True:
    b, a = s.recvfrom(100); s.sendto(b, a)
"""
PING = """
import socket, statistics, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5); out = []
for _ in range(8):
    t = time.perf_counter(); s.sendto(b"p", (sys.argv[1], 5202)); s.recvfrom(100)
    out.append((time.perf_counter() - t) * 1e3); time.sleep(0.05)
print(statistics.median(out[1:]))
"""
RECEIVE = """
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5201)); s.listen(1); c, _ = s.accept(); n, t0 = 0, None
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    t0 = t0 or time.time(); n += len(b)
print(n * 8 / (time.time() - t0) / 1e6)
"""
SEND = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], 5201)); buf = b"x" * (1 << 20)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    c.sendall(buf)
c.close()
"""


def _in(ns, code, *args):
    return ["ip", "netns", "exec", ns, sys.executable, "-c", code, *args]


def round_trip_ms(sw):
    """Median round trip of a UDP echo from the first host to the second (ms)."""
    echo = subprocess.Popen(_in(sw.hosts[1], ECHO))
    try:
        time.sleep(0.5)
        return float(subprocess.run(_in(sw.hosts[0], PING, Switch.SUBNET.format(2)),
                                    capture_output=True, text=True, check=True,
                                    timeout=60).stdout)
    finally:
        echo.terminate()
        echo.wait()


def throughput_mbit(sw, seconds=6):
    """TCP throughput from the first host to the second (Mbit/s)."""
    receiver = subprocess.Popen(_in(sw.hosts[1], RECEIVE), stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    subprocess.run(_in(sw.hosts[0], SEND, Switch.SUBNET.format(2), str(seconds)), check=True,
                   timeout=seconds + 60)
    return float(receiver.communicate(timeout=60)[0])


def check(rate, delay_ms):
    with Switch(2, rate, delay_ms=delay_ms) as sw:
        rtt, mbit = round_trip_ms(sw), throughput_mbit(sw)
    with open(sw.line_stats) as f:
        line = json.load(f)
    return dict(rate=rate, delay_ms=delay_ms, round_trip_ms=rtt, throughput_mbit=mbit,
                delay_line_cpu=line["cpu_s"] / line["wall_s"], frames=line["frames"])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", default="100mbit:20,1gbit:5", help="RATE:ONE_WAY_MS,...")
    p.add_argument("--json", default="results/link_check.json")
    args = p.parse_args()
    if shaping_problem():
        sys.exit(f"error: {shaping_problem()}")
    cells = [check(rate, float(ms)) for rate, ms in (c.split(":") for c in args.cells.split(","))]
    for c in cells:
        print(f"{c['rate']}, {c['delay_ms']:g} ms one way: round trip {c['round_trip_ms']:.1f} ms, "
              f"{c['throughput_mbit']:.0f} Mbit/s, delay line {c['delay_line_cpu']:.1%} of a core")
    with open(args.json, "w") as f:
        json.dump(dict(config=stored_config(args), cells=cells), f, indent=1)


if __name__ == "__main__":
    main()
