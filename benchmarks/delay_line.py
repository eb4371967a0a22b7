"""A one-way delay on an emulated link, where the kernel has no netem: pairs of TAP devices and
this process between them, which holds every frame for the delay before it passes it on.

    python -m benchmarks.delay_line --delay-ms 10 HOST_NS:eth0:SWITCH_NS:port0 ...

For each pair it makes two TAP devices, moves the first into HOST_NS as eth0 and the second into
SWITCH_NS as port0, prints ``ready`` and then forwards frames both ways, each ``--delay-ms``
after it left (constant delay, so in order). The rate limit stays tbf's, on the devices. It runs
until SIGTERM; the devices go with it. ``--stats FILE`` writes the CPU seconds it used and the
frames it forwarded when it ends.
"""
import argparse
import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import time
from collections import deque

TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000
MTU = 65000  # large frames: few per second for Python to move, even at 1 Gbit/s


def tap(name):
    """A new TAP device ``name`` in this namespace, its file descriptor (non-blocking)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def place(name, netns, as_name):
    """Moves device ``name`` into ``netns`` as ``as_name``, up, with the large MTU."""
    subprocess.run(["ip", "link", "set", name, "netns", netns], check=True)
    run = ["ip", "netns", "exec", netns, "ip", "link", "set"]
    subprocess.run([*run, name, "name", as_name], check=True)
    subprocess.run([*run, as_name, "mtu", str(MTU), "up"], check=True)


def forward(pairs, delay, stop):
    """Moves frames between the two descriptors of each pair, each ``delay`` seconds late,
    until ``stop()``; returns the number of frames."""
    other = {a: b for a, b in pairs} | {b: a for a, b in pairs}
    due = {fd: deque() for fd in other}  # frames to write into fd: (time, frame)
    frames = 0
    while not stop():
        now = time.monotonic()
        waits = [q[0][0] - now for q in due.values() if q]
        ready, _, _ = select.select(list(other), [], [], max(0.0, min(waits, default=0.05)))
        for fd in ready:
            while True:
                try:
                    frame = os.read(fd, MTU + 64)
                except (BlockingIOError, OSError):
                    break
                due[other[fd]].append((time.monotonic() + delay, frame))
        now = time.monotonic()
        for fd, q in due.items():
            while q and q[0][0] <= now:
                try:
                    os.write(fd, q.popleft()[1])
                    frames += 1
                except OSError:  # the device is going down: the frame is lost, as on a wire
                    pass
    return frames


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--delay-ms", type=float, required=True)
    p.add_argument("--stats", default=None)
    p.add_argument("pairs", nargs="+", help="HOST_NS:HOST_DEV:SWITCH_NS:SWITCH_DEV")
    args = p.parse_args()
    if args.delay_ms < 0:
        p.error(f"--delay-ms must be >= 0; got {args.delay_ms}")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    fds = []
    for k, pair in enumerate(args.pairs):
        host_ns, host_dev, switch_ns, switch_dev = pair.split(":")
        a, b = f"hvdxd{os.getpid() % 10000}a{k}", f"hvdxd{os.getpid() % 10000}b{k}"
        fds.append((tap(a), tap(b)))
        place(a, host_ns, host_dev)
        place(b, switch_ns, switch_dev)
    print("ready", flush=True)
    t0, cpu0 = time.monotonic(), time.process_time()
    frames = forward(fds, args.delay_ms / 1e3, lambda: bool(stopping))
    if args.stats:
        with open(args.stats, "w") as f:
            json.dump(dict(cpu_s=time.process_time() - cpu0, wall_s=time.monotonic() - t0,
                           frames=frames), f)


if __name__ == "__main__":
    main()
