"""Adaptive sampling by simulation: comparisons needed, adaptive vs random pairs; next_pair
latency; absolute ratings planned by CI vs the uniform design.

Pairs: 200 items with true qualities ~ N(0, spread²) in JND units (1 JND = 75 % preference),
seeded simulated raters (20; Thurstone noise, 5 % lapses, a left-position bias ~ N(0.2, 0.1²)
JND, left/right at random). Random pairs vs :class:`AdaptivePairSampler` (defaults:
``criterion="ranking"``; ``--criterion variance`` / ``information`` for the total-variance and
mutual-information ones, ``--batch mst`` for batches of spanning trees), both scaled with
``scale_pairs(model="thurstone", alpha=0.01)`` at checkpoints (×1.1 apart); "needed" is the
first checkpoint where the SRCC of the scale to the truth reaches the target (log-linear
between checkpoints), averaged over seeds. Latency: next_pair and update with 1,000 items after
3,000 judgements. Ratings: 200 images, true MOS ~ U(20, 80) on 0–100, per-image rating sd
~ U(5, 25), ratings clipped to the scale; 15 ratings per image in all; uniform vs 3 each then
``plan_ratings`` rounds of 200 (both objectives). CI columns: from the ratings' sample std (what
a study sees) and from the true sd (``true_*``).
``--only designs`` (not in the default run): each design's worth free of the outcomes' noise,
E[1 − τ] = mean Φ(−|Δq|/√V) over all pairs, V from the inverse Fisher information of its
judgements at the true qualities, of random pairs over that of the sampler's designs and of
oracle designs (pairs drawn ∝ exp(−Δq²/2h²) on the true qualities, best h); comparisons go as
its square.

Measured (5 seeds, ``--only pairs --seeds 5``), comparisons to SRCC 0.95 / 0.98, random /
adaptive: 0.5 JND 18.3k / 14.7k (1.25×), 48.3k / 43.1k (1.12×); 1 JND 5.6k / 4.4k (1.28×),
14.0k / 10.9k (1.28×); 2 JND 2.5k / 1.5k (1.59×), 6.6k / 3.1k (2.14×). ``--criterion
variance`` (the default before) on the same seeds: 0.95×, 0.95×; 1.18×, 1.14×; 1.43×, 1.69×.
``--only designs`` (seed 0; ~comparisons ratio): oracle / ranking / variance 1.08 / 1.07 / 1.05
at 0.5 JND, 1.29 / 1.28 / 1.22 at 1 JND, 1.98 / 1.88 / 1.74 at 2 JND. Latency (1,000 items):
next_pair p50 6 ms, p99 13 ms; update p50 9 ms, p99 17 ms; a refit 0.4 s (idle machine).

    .venv/bin/python benchmarks/adaptive.py [--quick] [--seeds 3] [--criterion variance]
        [--batch mst] [--spreads 0.5 1] [--only designs]
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # small dense solves: threads only contend on a busy box

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from aigiqa.errors import ComparisonError  # noqa: E402
from aigiqa.subjective import scale_pairs  # noqa: E402
from aigiqa.subjective.adaptive import CRITERIA, AdaptivePairSampler  # noqa: E402
from aigiqa.subjective.adaptive_batch import BATCHES  # noqa: E402
from aigiqa.subjective.adaptive_ratings import plan_ratings  # noqa: E402
from aigiqa.subjective.simulate import design_discordance, simulate_pair_raters  # noqa: E402

TARGETS = (0.95, 0.98)
N_RATERS = 20


def checkpoints(cap: int) -> list[int]:
    out, c = [], 400.0
    while c < cap:
        out.append(int(c))
        c *= 1.1
    return [*out, cap]


def run_pairs(method: str, n: int, spread: float, seed: int, cap: int,
              criterion: str = "ranking", batch: str = "greedy") -> list[tuple[int, float]]:
    """(comparisons, SRCC) at each checkpoint until the last target holds twice running."""
    raters = simulate_pair_raters(n, spread, N_RATERS, seed=seed)
    names = [f"i{k:04d}" for k in range(n)]
    code = {x: k for k, x in enumerate(names)}
    rng = np.random.default_rng(10_000 + seed)
    sampler = AdaptivePairSampler(names, seed=seed, criterion=criterion, batch=batch) \
        if method == "adaptive" else None
    rows_a, rows_b, rows_o, curve = [], [], [], []
    todo = checkpoints(cap)
    t = 0
    while todo:
        rater = t % N_RATERS
        if sampler is None:
            i, j = rng.choice(n, 2, replace=False)
            a, b = names[i], names[j]
        else:
            a, b = sampler.next_pair(subject=rater)
        outcome = raters.judge(code[a], code[b], rater)
        if sampler is not None:
            sampler.update(a, b, outcome, subject=rater)
        rows_a.append(a)
        rows_b.append(b)
        rows_o.append(outcome)
        t += 1
        if t == todo[0]:
            todo.pop(0)
            try:
                fit = scale_pairs(pd.DataFrame({"a": rows_a, "b": rows_b, "outcome": rows_o}),
                                  "thurstone", alpha=0.01)
            except ComparisonError:  # not connected yet (early random pairs): no scale
                curve.append((t, float("nan")))
                continue
            truth = raters.quality[[code[x] for x in fit["item"]]]
            srcc = float(stats.spearmanr(fit["score"], truth).statistic) if len(fit) == n \
                else float("nan")  # an item not compared yet: no score for it
            curve.append((t, srcc))
            if len(curve) >= 2 and min(r for _, r in curve[-2:]) >= TARGETS[-1]:
                break
    return curve


def needed(curve: list[tuple[int, float]], target: float) -> float:
    for k, (t, r) in enumerate(curve):
        if r >= target:
            if k == 0 or not np.isfinite(curve[k - 1][1]):
                return float(t)
            t0, r0 = curve[k - 1]
            f = (target - r0) / (r - r0)
            return float(np.exp(np.log(t0) + f * (np.log(t) - np.log(t0))))
    return float("nan")


def pairs_table(spreads, seeds, n, cap, criterion, batch="greedy") -> None:
    print(f"\npairs: {n} items, {len(seeds)} seed(s), criterion {criterion!r}, batch {batch!r}, "
          f"comparisons to reach SRCC (mean ± sd over seeds; cap {cap:,})")
    print(f"{'spread (JND)':>12} | {'target':>6} | {'random':>14} | {'adaptive':>14} | ratio")
    for spread in spreads:
        got = {m: [run_pairs(m, n, spread, s, cap, criterion, batch) for s in seeds]
               for m in ("random", "adaptive")}
        for target in TARGETS:
            cells = {}
            for m, curves in got.items():
                vals = np.array([needed(c, target) for c in curves])
                cells[m] = vals
            text = {m: (f"{np.mean(v):8,.0f} ± {np.std(v):4,.0f}" if np.isfinite(v).all()
                        else f">{cap:,} ({np.isnan(v).sum()} runs)") for m, v in cells.items()}
            ratio = np.mean(cells["random"]) / np.mean(cells["adaptive"])
            print(f"{spread:>12} | {target:>6} | {text['random']:>14} | {text['adaptive']:>14} | "
                  f"{ratio:5.2f}x", flush=True)


def expected_discordance(quality, i, j, lapse: float = 0.05) -> float:
    """1 − Kendall's τ that a design (pairs i, j) leaves on average, without the outcomes'
    noise (:func:`~aigiqa.subjective.simulate.design_discordance` over the number of pairs)."""
    n = len(quality)
    return 2 * design_discordance(quality, i, j, lapse) / (n * (n - 1) / 2)


def designs_table(spreads, n: int = 200, seed: int = 0) -> None:
    """E[1 − τ] of random pairs over that of the sampler's designs (its criteria) and of
    oracle designs that know the truth (pairs drawn ∝ exp(−Δq²/2h²), the best h of 0.2–2
    JND); comparisons scale as the square of this ratio (1 − τ ∝ 1/√comparisons)."""
    budgets = {0.5: 10_000, 1.0: 10_000, 2.0: 6_000}
    print(f"\ndesigns: {n} items, seed {seed}: E[1 - tau] of random pairs / that of the design")
    for spread in spreads:
        budget = budgets.get(spread, 10_000)
        raters = simulate_pair_raters(n, spread, N_RATERS, seed=seed)
        q, rng = raters.quality, np.random.default_rng(seed)
        i, j = np.triu_indices(n, 1)
        gap = np.abs(q[i] - q[j])
        got = {}
        for h in (None, 2.0, 1.0, 0.5, 0.3, 0.2):
            w = np.ones_like(gap) if h is None else np.exp(-gap * gap / (2 * h * h))
            k = rng.choice(len(gap), budget, p=w / w.sum())
            got[h] = expected_discordance(q, i[k], j[k])
        row = {"oracle": max(got[None] / v for h, v in got.items() if h is not None)}
        for criterion in ("ranking", "variance"):
            sampler = AdaptivePairSampler([str(k) for k in range(n)], seed=seed,
                                          criterion=criterion)
            pairs = []
            for t in range(budget):
                a, b = sampler.next_pair(subject=t % N_RATERS)
                sampler.update(a, b, raters.judge(int(a), int(b), t % N_RATERS),
                               subject=t % N_RATERS)
                pairs.append((int(a), int(b)))
            a, b = np.array(pairs).T
            row[criterion] = got[None] / expected_discordance(q, a, b)
        print(f"spread {spread} JND, {budget:,} comparisons: " + ", ".join(
            f"{k} {v:.3f} (~{v * v:.2f}x comparisons)" for k, v in row.items()), flush=True)


def latency(n: int = 1000, warm: int = 3000, calls: int = 300, criterion="ranking",
            batch="greedy") -> None:
    raters = simulate_pair_raters(n, 1.0, N_RATERS, seed=0)
    names = [f"i{k:04d}" for k in range(n)]
    code = {x: k for k, x in enumerate(names)}
    sampler = AdaptivePairSampler(names, seed=0, criterion=criterion, batch=batch)
    rng = np.random.default_rng(0)
    for t in range(warm):  # a study under way: random judgements (a cheap warm-up)
        i, j = rng.choice(n, 2, replace=False)
        sampler.update(names[i], names[j], raters.judge(i, j, t % N_RATERS))
    pick, upd = [], []
    for t in range(calls):
        t0 = time.perf_counter()
        a, b = sampler.next_pair(subject=t % N_RATERS)
        t1 = time.perf_counter()
        sampler.update(a, b, raters.judge(code[a], code[b], t % N_RATERS), subject=t % N_RATERS)
        t2 = time.perf_counter()
        pick.append(t1 - t0)
        upd.append(t2 - t1)
    t0 = time.perf_counter()
    sampler.refit_posterior()
    refit = time.perf_counter() - t0
    pick_ms, upd_ms = np.array(pick) * 1e3, np.array(upd) * 1e3
    print(f"\nlatency ({criterion!r}, {batch!r}), {n} items after {warm:,} judgements, "
          f"{calls} calls: next_pair p50 "
          f"{np.median(pick_ms):.1f} ms, p99 {np.percentile(pick_ms, 99):.1f} ms; update p50 "
          f"{np.median(upd_ms):.1f} ms, p99 {np.percentile(upd_ms, 99):.1f} ms (a refit, "
          f"{refit * 1e3:.0f} ms, falls on 2 % growth steps, at least n/4 judgements apart)")


def simulate_rating(rng, truth, noise, k):
    return np.clip(truth[k] + noise[k] * rng.standard_normal(len(k)), 0, 100)


def ratings_table(seeds, n=200, per_item=15, start=3, batch=200) -> None:
    budget = n * per_item
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        truth, noise = rng.uniform(20, 80, n), rng.uniform(5, 25, n)
        names = [f"img{k:04d}" for k in range(n)]
        designs = {"uniform": np.repeat(np.arange(n), per_item)}
        for objective in ("variance", "widest"):
            codes = np.repeat(np.arange(n), start)
            vals = simulate_rating(rng, truth, noise, codes)
            while len(codes) < budget:
                table = _table(names, codes, vals, n)
                plan = plan_ratings(table, min(batch, budget - len(codes)), objective=objective)
                more = np.repeat(np.arange(n), plan["extra"].to_numpy())
                codes = np.concatenate([codes, more])
                vals = np.concatenate([vals, simulate_rating(rng, truth, noise, more)])
            designs[objective] = (codes, vals)
        codes = designs["uniform"]
        designs["uniform"] = (codes, simulate_rating(rng, truth, noise, codes))
        for name, (codes, vals) in designs.items():
            table = _table(names, codes, vals, n)
            ci = 1.95996 * table["std"] / np.sqrt(table["n"])
            true_ci = 1.95996 * noise / np.sqrt(table["n"])  # with the true rating sd
            rows.append({"design": name, "seed": seed, "mean_ci95": ci.mean(), "max_ci95": ci.max(),
                         "true_mean_ci95": true_ci.mean(), "true_max_ci95": true_ci.max(),
                         "rmse": np.sqrt(np.mean((table["mos"] - truth) ** 2)),
                         "srcc": stats.spearmanr(table["mos"], truth).statistic})
    res = pd.DataFrame(rows).groupby("design", sort=False).mean(numeric_only=True)
    print(f"\nratings: {n} images x {per_item} ratings each on average ({budget:,}), "
          f"{len(seeds)} seeds (means)")
    print(res.drop(columns="seed").to_string(float_format=lambda x: f"{x:.4f}"))


def _table(names, codes, vals, n):
    count = np.bincount(codes, minlength=n)
    mean = np.bincount(codes, vals, n) / count
    dev = np.bincount(codes, (vals - mean[codes]) ** 2, n)
    return pd.DataFrame({"image": names, "mos": mean, "std": np.sqrt(dev / (count - 1)),
                         "n": count})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, spreads 0.5 and 2")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--cap", type=int, default=80_000)
    parser.add_argument("--only", choices=("pairs", "latency", "ratings", "designs"))
    parser.add_argument("--criterion", choices=CRITERIA, default="ranking")
    parser.add_argument("--batch", choices=BATCHES, default="greedy")
    parser.add_argument("--spreads", type=float, nargs="+", help="default 0.5 1 2 (quick: 0.5 2)")
    args = parser.parse_args()
    seeds = range(1 if args.quick else args.seeds)
    spreads = args.spreads or ((0.5, 2.0) if args.quick else (0.5, 1.0, 2.0))
    t0 = time.perf_counter()
    if args.only in (None, "latency"):
        latency(criterion=args.criterion, batch=args.batch)
    if args.only in (None, "ratings"):
        ratings_table(range(3 if args.quick else 10))
    if args.only == "designs":  # not in the default run: ~3 min more
        designs_table(spreads)
    if args.only in (None, "pairs"):
        pairs_table(spreads, seeds, args.items, args.cap, args.criterion, args.batch)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
