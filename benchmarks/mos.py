"""Time MOS processing on a simulated AIGIQA-20K-sized study: 20,000 images × 21 subjects.

Ratings are simulated (seeded) from a known truth: X_es = ψ_e + Δ_s + υ_s·N(0, 1), clipped to the
0–100 slider, one subject answering at random (to be screened out). Prints the wall time of
reading the CSV and of each method (goals: < 2 s for z-score + BT.500, < 30 s for the MLE) and
the SRCC of each method's MOS against the true ψ.

    .venv/bin/python benchmarks/mos.py [--images 20000] [--subjects 21] [--missing 0.0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from scipy import stats

from aigiqa.subjective import compute_mos, read_ratings
from aigiqa.subjective.simulate import simulate_ratings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--subjects", type=int, default=21)
    parser.add_argument("--missing", type=float, default=0.0)
    args = parser.parse_args()
    study = simulate_ratings(args.images, args.subjects, missing=args.missing, bias_sd=8.0,
                             inconsistency=(4.0, 15.0), random_subjects=1, seed=0)
    frame, truth = study.ratings, study.quality
    print(f"{len(frame):,} ratings: {args.images:,} images x {args.subjects} subjects, "
          f"missing {args.missing:.0%}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ratings.csv"
        frame.to_csv(path, index=False)
        t0 = time.perf_counter()
        frame = read_ratings(path)
        print(f"read_ratings (CSV)            {time.perf_counter() - t0:6.2f} s")
    runs = [("zscore", {"screen": True}), ("mos", {"screen": True}),
            ("bias_removed", {"screen": True}), ("mle", {"screen": False})]
    for method, kw in runs:
        t0 = time.perf_counter()
        res = compute_mos(frame, method=method, scale=(0, 100), target_range=(0, 5), **kw)
        dt = time.perf_counter() - t0
        srcc = stats.spearmanr(res.table["mos"], truth.loc[res.table["image"]]).statistic
        extra = ""
        if "mle" in res.report:
            extra = f", {res.report['mle']['n_iter']} iterations"
        print(f"{method:<13} screen={kw['screen']!s:<5}  {dt:6.2f} s   SRCC vs truth {srcc:.4f}, "
              f"rejected {len(res.rejected)}, split-half SRCC "
              f"{res.report['split_half']['srcc']:.4f}{extra}")


if __name__ == "__main__":
    main()
