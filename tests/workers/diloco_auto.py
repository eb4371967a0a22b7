"""Runs on every rank: DiLoCo(period="auto") chooses a period from its probe's timings, the same
on every rank, runs its rounds at that period afterwards, and keeps it through a state_dict
round trip. Rank 0 writes JSON to argv[1]."""
import json
import logging
import re
import sys
import time

import horovod.torch as hvd

import horovod_ext as hvd_ext
from diloco_reference import build, train_step

STEPS = 80


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def run(pause_s, fragments):
    """Trains with a pause in every step (a slower inner step); the steps after which this rank
    sent bytes, the chosen period and overlap, and the logged timings."""
    records = Records()
    logger = logging.getLogger("horovod_ext")
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    model, opt = build(hvd_ext.DiLoCo(period="auto", fragments=fragments, mix=0.5), "adam")
    sent, rounds_after = 0.0, []
    for t in range(STEPS):
        time.sleep(pause_s)
        train_step(model, opt, t)
        if opt.bytes_sent > sent:
            rounds_after.append(t + 1)
            sent = opt.bytes_sent
    logger.removeHandler(records)
    saved = opt.state_dict()
    mode = saved["hvd_ext"]
    # a new optimizer loading the state keeps the period: its next rounds are at the same steps
    model2, opt2 = build(hvd_ext.DiLoCo(period="auto", fragments=fragments, mix=0.5), "adam")
    opt2.load_state_dict(saved)
    sent2, resumed_after = opt2.bytes_sent, []
    for t in range(STEPS, STEPS + mode["period"] * 2):
        train_step(model2, opt2, t)
        if opt2.bytes_sent > sent2:
            resumed_after.append(t + 1)
            sent2 = opt2.bytes_sent
    chosen = [m for m in records.messages if "period='auto'" in m]
    timings = [float(x) for x in re.findall(r"([\d.]+) ms", chosen[0])] if chosen else []
    return dict(period=mode["period"], overlap=mode["overlap"], probing=mode["probing"],
                rounds_after=rounds_after, resumed_after=resumed_after, log=chosen,
                round_ms=timings[0] if timings else None, step_ms=timings[1] if timings else None)


def main():
    hvd.init()
    results = {"slow": run(0.05, 1), "fast": run(0.0, 2)}
    everyone = hvd.allgather_object((results["slow"]["period"], results["fast"]["period"]))
    results["periods_of_ranks"] = everyone
    if hvd.rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
