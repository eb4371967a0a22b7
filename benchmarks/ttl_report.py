"""What time_to_loss.py makes of its parts: the training curves (steps, validation loss, bytes),
the step times at the link, and the end-to-end checks -> time and bytes to the target per method
and seed, the ratio to the best peer with a 95% bootstrap interval, the loss each method has at
a fixed wall-clock budget, and the no-communication limit with each method's multiple of it; a
table and a plot of validation loss against wall-clock."""
import statistics

from benchmarks.ratios import cell, median_ci, speedup_unpaired


def first_below(curve, target):
    """The first point (step, val, bytes, ...) of ``curve`` whose validation loss is at most
    ``target``, or None."""
    return next((pt for pt in curve if pt[1] <= target), None)


def loss_at(curve, step):
    """The validation loss of the last evaluation at or before ``step`` (None before the first;
    past the curve's end, its last: the run had finished by then)."""
    seen = [pt[1] for pt in curve if pt[0] <= step]
    return seen[-1] if seen else None


def target_of(trained, step):
    """Sync's validation loss at ``step``, the mean over its seeds."""
    runs = trained["methods"]["sync"]["runs"]
    vals = [next(pt[1] for pt in r["curve"] if pt[0] == step) for r in runs]
    return statistics.fmean(vals)


def _timed(timed):
    return {r["mode"]: r for r in timed["results"]}


def no_communication(trained, timed, target):
    """The physical limit of time to ``target``: sync's steps to it (per seed) x the
    compute-only step time measured in the same rounds as every method's step time (no
    collective at all). Its seconds (mean steps x median compute step), a 95% interval over
    seeds x rounds, and those samples; None when sync never reaches the target."""
    steps = [hit[0] for r in trained["methods"]["sync"]["runs"]
             if (hit := first_below(r["curve"], target)) is not None]
    if not steps:
        return None
    rounds = timed.get("compute_round_ms") or [timed["compute_ms"]]  # older runs: the median
    samples = [s * ms / 1e3 for s in steps for ms in rounds]
    _, ci = median_ci(samples)
    return dict(time_to_target_s=statistics.fmean(steps) * timed["compute_ms"] / 1e3,
                ci95=ci, step_ms=timed["compute_ms"], steps=steps, samples=samples)


def combine(args, methods, trained, timed, checks):
    """``methods``: name -> (training curve, throughput mode, peer) of time_to_loss.METHODS."""
    target = target_of(trained, args.target_step)
    rows, by_mode = {}, _timed(timed)
    for name, (curve, mode, peer) in methods.items():
        run, t = trained["methods"][curve], by_mode[mode]
        step_s = t["step_ms"] / 1e3
        seeds = []
        for r in run["runs"]:
            hit = first_below(r["curve"], target)
            steps = None if hit is None else hit[0]
            # what training sent, else (DDP's, not counted) the harness's bytes per step
            counted = r["bytes"] is not None
            sent = None if steps is None else hit[2] if counted else \
                None if t["bytes_per_step"] is None else t["bytes_per_step"] * steps
            seeds.append(dict(seed=r["seed"], steps_to_target=steps, bytes_to_target=sent,
                              time_to_target_s=None if steps is None else steps * step_s))
        times = [s["time_to_target_s"] for s in seeds]
        rows[name] = dict(peer=peer, trained_as=curve, mode=mode, lr=run["lr"],
                          step_ms=t["step_ms"], round_ms=t["round_ms"], runs=seeds,
                          time_to_target_s=None if None in times else statistics.fmean(times),
                          curve=[(pt[0] * step_s, pt[1]) for pt in run["runs"][0]["curve"]])
    limit = no_communication(trained, timed, target)
    for r in rows.values():
        r["vs_limit"], r["vs_limit_ci95"] = (None, None) if limit is None or \
            r["time_to_target_s"] is None else speedup_unpaired(_samples(r), limit["samples"])
    peers = [n for n, r in rows.items() if r["peer"] and r["time_to_target_s"] is not None]
    best = min(peers, key=lambda n: rows[n]["time_to_target_s"]) if peers else None
    budget = rows[best]["time_to_target_s"] if best else None
    for name, r in rows.items():
        r["loss_at_budget"] = None if budget is None else loss_at(
            trained["methods"][r["trained_as"]]["runs"][0]["curve"],
            budget * 1e3 / r["step_ms"])
        r["vs_best_peer"], r["vs_best_peer_ci95"] = None, None
        if best and r["time_to_target_s"] is not None:
            r["vs_best_peer"], r["vs_best_peer_ci95"] = speedup_unpaired(
                _samples(rows[best]), _samples(r))
    out = dict(config=dict(vars(args)), model="chars", ranks=args.np, rate=args.rate,
               target=dict(loss=target, step=args.target_step, of="sync"), budget_s=budget,
               best_peer=best, methods=rows, limit=limit,
               provenance=dict(train=trained.get("config", {}).get("provenance"),
                               steps=timed.get("config", {}).get("provenance")),
               checks={m: _check(c, target, rows[m]) for m, c in checks.items()})
    return out


def _samples(row):
    """Times to target over seeds x rounds (seconds): the spread of both."""
    return [s["steps_to_target"] * ms / 1e3 for s in row["runs"] for ms in row["round_ms"]]


def _check(curve, target, row):
    """An end-to-end run's seconds to target beside steps x the harness's step time."""
    hit = first_below(curve, target)
    if hit is None:
        return dict(reached=False)
    predicted = hit[0] * row["step_ms"] / 1e3
    return dict(reached=True, steps=hit[0], measured_s=hit[3], predicted_s=predicted,
                measured_over_predicted=hit[3] / predicted)


def _fmt(v, spec):
    return "not reached" if v is None else format(v, spec)


def table(out):
    """Markdown: per method, its step time, steps and time to target, x against the best peer
    and x the no-communication limit (its own row); the runs' provenance under it."""
    lines = [f"Target: validation loss {out['target']['loss']:.4f} (sync at step "
             f"{out['target']['step']}); {out['ranks']} ranks, link {link_of(out)}; best peer "
             f"{out['best_peer']}; budget {_fmt(out['budget_s'], '.1f')} s", "",
             "| method | lr | step | steps to target | time to target | vs best peer | "
             "x limit | MB to target | loss at budget |", "|---" * 9 + "|"]
    limit = out.get("limit")
    if limit is not None:
        steps = ", ".join(str(s) for s in limit["steps"])
        lines.append(f"| no communication (limit) | - | {limit['step_ms']:.1f} ms | {steps} | "
                     f"{limit['time_to_target_s']:.1f} s [{limit['ci95'][0]:.1f}, "
                     f"{limit['ci95'][1]:.1f}] | - | 1.00x | 0 | - |")
    for name, r in out["methods"].items():
        steps = ", ".join(_fmt(s["steps_to_target"], "d") for s in r["runs"])
        sent = [s["bytes_to_target"] for s in r["runs"]]
        mb = "-" if None in sent else f"{statistics.fmean(sent) / 1e6:.1f}"
        ratio = "-" if r["vs_best_peer"] is None else cell(r["vs_best_peer"],
                                                            r["vs_best_peer_ci95"])
        over = "-" if r.get("vs_limit") is None else cell(r["vs_limit"], r["vs_limit_ci95"])
        took = "not reached" if r["time_to_target_s"] is None else \
            f"{r['time_to_target_s']:.1f} s"
        lines.append(f"| {name} | {r['lr']:g} | {r['step_ms']:.1f} ms | {steps} | {took} | "
                     f"{ratio} | {over} | {mb} | {_fmt(r['loss_at_budget'], '.4f')} |")
    for name, c in out["checks"].items():
        lines.append("" if not c["reached"] else
                     f"\nEnd to end, {name}: {c['measured_s']:.1f} s to target, the product "
                     f"{c['predicted_s']:.1f} s ({c['measured_over_predicted']:.2f}x)")
    lines += ["", provenance_line(out)]
    return "\n".join(lines)


def link_of(out):
    """The link in words: its rate, and its one-way delay when it has one."""
    delay = out.get("config", {}).get("delay_ms")
    return out["rate"] + (f", {delay:g} ms one way" if delay else "")


def provenance_line(out):
    """Where the table's parts were measured: the commit and date of the training curves and of
    the step times (each part records its own; parts stored before that say so)."""
    said = []
    for part in ("train", "steps"):
        p = (out.get("provenance") or {}).get(part)
        said.append(f"{part}: not recorded" if not p else
                    f"{part}: commit {(p['commit'] or 'unknown')[:12]}, {p['date'][:10]}, "
                    f"torch {p['torch']}, Horovod {p['horovod']}, {p['cores']} cores")
    return "Measured (" + "; ".join(said) + ")."


def plot(out, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5))
    for name, r in out["methods"].items():
        t, val = zip(*r["curve"])
        ax.plot(t, val, label=name, linestyle="--" if r["peer"] else "-")
    ax.axhline(out["target"]["loss"], color="gray", linewidth=0.8)
    ax.set(xlabel="wall-clock seconds (steps x measured step time)", xscale="log",
           ylabel="validation loss (nats/char)",
           title=f"Character-level text model, {out['ranks']} ranks, link {out['rate']}: "
                 f"validation loss against time")
    top = max(r["curve"][1][1] for r in out["methods"].values() if len(r["curve"]) > 1)
    ax.set_ylim(top=top)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


RATE_ORDER = ("10gbit", "1gbit", "300mbit", "100mbit", "25mbit")


def ordered(outs, names=None):
    """The stored runs ``outs`` (and their ``names``, zipped) by rate, then delay."""
    def key(o):
        o = o[0] if names is not None else o
        return (RATE_ORDER.index(o["rate"]) if o["rate"] in RATE_ORDER else len(RATE_ORDER),
                o.get("config", {}).get("delay_ms") or 0)
    return sorted(outs if names is None else zip(outs, names), key=key)


def ours_by_time(out):
    """The methods of ours that reached the target in run ``out``, the fastest first."""
    rows = out["methods"]
    return sorted((n for n, r in rows.items() if not r["peer"] and
                   r["time_to_target_s"] is not None), key=lambda n: rows[n]["time_to_target_s"])


def same_method(stored, name):
    """Whether a stored part's name ``stored`` is method ``name``: earlier names read through
    the catalog (``powersgd_r4`` is ``sync+powersgd-r4``) and the peers' stored names."""
    from benchmarks.peers import STORED_AS
    from horovod_ext import methods as catalog
    stored = STORED_AS.get(stored, stored)
    if stored == name:
        return True
    try:
        return catalog.key(stored) == catalog.key(name)
    except ValueError:
        return False


def which_method(outs):
    """Markdown, one row per link of the stored runs ``outs``: the no-communication limit, the
    fastest of ours and the fastest peer of any library to the target (each as a multiple of
    the limit), how many times sooner ours gets there, and both trained end to end under the
    link (one run each: the first seed)."""
    from benchmarks.peers import REGISTRY, library
    lines = ["| link | no-communication limit | fastest of ours | fastest peer (library) | "
             "ours sooner than the peer | end to end, ours / the peer |", "|---|---|---|---|---|---|"]
    for out in ordered(outs):
        rows, ours, peer = out["methods"], ours_by_time(out), out["best_peer"]
        if not ours or peer is None:
            continue
        best = ours[0]
        limit = out.get("limit")
        def over(r):
            return "" if r.get("vs_limit") is None else f" ({r['vs_limit']:.1f}x the limit)"
        lines.append(f"| {link_of(out)} | "
                     + ("-" if limit is None else f"{limit['time_to_target_s']:.1f} s")
                     + f" | {best}, {rows[best]['time_to_target_s']:.1f} s{over(rows[best])} | "
                     f"{peer} ({library(peer)}), {rows[peer]['time_to_target_s']:.1f} s"
                     f"{over(rows[peer])} | "
                     f"{cell(rows[best]['vs_best_peer'], rows[best]['vs_best_peer_ci95'])} | "
                     f"{_measured(out, best)} / {_measured(out, REGISTRY[peer].trains or peer)} |")
    return "\n".join(lines)


def summary(outs):
    """One paragraph over the stored links: on how many ours is first by the product and end to
    end, and how far its fastest is from the no-communication limit."""
    from benchmarks.peers import REGISTRY
    first = e2e = checked = 0
    over = []
    for out in outs:
        rows, ours, peer = out["methods"], ours_by_time(out), out["best_peer"]
        if not ours or peer is None:
            continue
        best = ours[0]
        first += rows[best]["time_to_target_s"] < rows[peer]["time_to_target_s"]
        mine, theirs = (out.get("checks", {}).get(n) for n in (best, REGISTRY[peer].trains or peer))
        if mine and theirs and mine["reached"]:
            checked += 1
            e2e += not theirs["reached"] or mine["measured_s"] < theirs["measured_s"]
        over.append((rows[best]["vs_limit"], link_of(out)))
    worst = max(over)
    return (f"By steps x step time, the fastest of ours reaches the target before the fastest "
            f"peer of any library on {first} of {len(over)} links; trained end to end under the "
            f"link (one run each), on {e2e} of {checked}. It is within 1.3x of the "
            f"no-communication limit on {sum(v <= 1.3 for v, _ in over)} of {len(over)} links, "
            f"and {worst[0]:.1f}x it at worst ({worst[1]}).")


def _measured(out, name):
    """The end-to-end seconds to target of ``name``'s check, in words."""
    c = out.get("checks", {}).get(name)
    return "not run" if c is None else f"{c['measured_s']:.1f} s" if c["reached"] else \
        "not reached"


def advice(outs, names):
    """Markdown, one row per link of the stored runs ``outs`` (stored as ``names``): the method
    of ours to use there, by time to the target (and the next one), and what the exact one
    (sync) costs against it; each row names the JSON it rests on."""
    from benchmarks.peers import library
    lines = ["| link | use (first to the target) | then | exact sync takes | fastest peer takes | "
             "rests on |", "|---|---|---|---|---|---|"]
    for out, name in ordered(outs, names):
        rows, ours = out["methods"], ours_by_time(out)
        if len(ours) < 2:
            continue
        first, then, sync = rows[ours[0]], rows[ours[1]], rows.get("sync")
        def times(r):
            return "not reached" if r is None or r["time_to_target_s"] is None else \
                f"{r['time_to_target_s'] / first['time_to_target_s']:.1f}x as long"
        peer = out["best_peer"]
        lines.append(f"| {link_of(out)} | {ours[0]} ({first['time_to_target_s']:.1f} s) | "
                     f"{ours[1]} ({then['time_to_target_s']:.1f} s) | {times(sync)} | "
                     f"{peer} ({library(peer)}): {times(rows[peer])} | `{name}` |")
    return "\n".join(lines)
