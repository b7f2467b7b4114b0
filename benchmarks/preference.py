"""Time the preference tools: reading the ImageReward test file, pairwise accuracy with 1,000
bootstrap resamples under each rule, the evaluation and files of `aigiqa bench` on it (random
scores, no images needed), and scale_pairs on simulated comparisons (seeded).

    AIGIQA_SHARED=../shared .venv/bin/python benchmarks/preference.py [--items 2000]
        [--comparisons 50000]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from aigiqa import load_database
from aigiqa.evaluation import pairwise_accuracy
from aigiqa.subjective import scale_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--comparisons", type=int, default=50_000)
    args = parser.parse_args()
    shared = Path(os.environ.get("AIGIQA_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    start = time.perf_counter()
    db = load_database("imagereward-test", shared / "reference" / "imagereward",
                       check_images=False)
    print(f"read {db!r}: {time.perf_counter() - start:.2f} s")
    rng = np.random.default_rng(0)
    scores = {r.name: float(rng.random()) for r in db}
    for rule in ("imagereward", "hpsv2", "pickscore"):
        start = time.perf_counter()
        res = pairwise_accuracy(db, scores, rule=rule, bootstrap=1000)
        print(f"{rule:<11} random score {res.accuracy:.4f} [{res.ci[0]:.4f}, {res.ci[1]:.4f}]:"
              f" {time.perf_counter() - start:.2f} s")
    bench_evaluation(db, rng)
    n, m = args.items, args.comparisons
    true = rng.normal(size=n)
    i = rng.integers(0, n, m)
    j = (i + rng.integers(1, n, m)) % n
    p = 1 / (1 + np.exp(-(true[i] - true[j])))
    outcome = np.where(rng.random(m) < 0.15, "tie", np.where(rng.random(m) < p, "a", "b"))
    comp = pd.DataFrame({"a": [f"x{k}" for k in i], "b": [f"x{k}" for k in j],
                         "outcome": outcome})
    names = [f"x{k}" for k in range(n)]
    for model, ties in (("bt", "rao-kupper"), ("bt", "davidson"), ("thurstone", "rao-kupper")):
        start = time.perf_counter()
        res = scale_pairs(comp, model, ties)
        took = time.perf_counter() - start
        srcc = stats.spearmanr(res.set_index("item")["score"].reindex(names), true)[0]
        print(f"scale_pairs {model}/{ties}, {n} items x {m} comparisons: {took:.1f} s "
              f"(SRCC vs truth {srcc:.3f}, max gradient {res.attrs['max_gradient']:.1e})")


def bench_evaluation(db, rng: np.random.Generator, n_metrics: int = 3) -> None:
    """What `aigiqa bench` adds after scoring: the evaluation and the files (random scores)."""
    import tempfile

    from aigiqa.benchmark.evaluations import choose_evaluation

    frame = db.to_frame()
    metrics = [{"spec": f"random{k}"} for k in range(n_metrics)]
    for m in metrics:
        frame[m["spec"]] = rng.random(len(frame))
    evaluation = choose_evaluation(db, bootstrap=1000)
    start = time.perf_counter()
    results, groups = evaluation.evaluate(frame, metrics)
    took = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        evaluation.write(Path(out), frame, results, groups,
                         {"database": db.name, "metrics": metrics, **evaluation.meta})
        wrote = time.perf_counter() - start
    print(f"bench evaluation, {n_metrics} metrics x 1,000 group bootstraps: {took:.2f} s; "
          f"results + groups.csv + report: {wrote:.2f} s")


if __name__ == "__main__":
    main()
