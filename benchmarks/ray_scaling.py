"""Ray backend throughput with 1 vs 2 local Ray CPUs (one scoring actor per CPU).

Builds the synthetic demo database (N images of 256×256), then for each CPU count starts a local
Ray (``ray.init(num_cpus=c)``), scores every image with a metric costly enough to dominate (piqe
by default; niqe/brisque need their assets, e.g. AIGIQA_HOME=/work/shared) into a fresh in-memory
store, and prints images/s and the speed-up over the first CPU count: "total" is the whole
``score_images`` call (hashing, actor start with the metric made once per actor, scoring,
commits; ``ray.init`` itself is not timed); "steady" counts the scores committed after the
first result batch over the time from that batch to the last, so the fixed start-up (actor
start, model load) drops out: the throughput a long run approaches. Each figure is the best of
``--repeat`` runs (a shared machine is noisy).
``--local`` adds the local backend with as many worker processes, for reference. The load
average is printed too: on a shared machine other processes take CPUs from the workers.

    python benchmarks/ray_scaling.py [--n 200] [--metric piqe] [--cpus 1 2] [--batch-size 8]
                                     [--repeat 3] [--local] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import ray

from aigiqa.benchmark.backends import make_backend
from aigiqa.benchmark.runner import score_images
from aigiqa.databases.registry import load_database
from aigiqa.demo import build_demo


class TimedBackend:
    """Wraps a backend and stamps the time and size of every committed result batch."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.stamps: list[tuple[float, int]] = []

    def run(self, items, metrics, batch_size, on_result) -> None:
        def stamped(results) -> None:
            on_result(results)
            self.stamps.append((time.perf_counter(), len(results)))

        self.inner.run(items, metrics, batch_size, stamped)

    def steady_rate(self) -> float:
        """Scores per second after the first committed batch (NaN with a single batch)."""
        if len(self.stamps) < 2:
            return float("nan")
        done = sum(n for _, n in self.stamps[1:])
        return done / (self.stamps[-1][0] - self.stamps[0][0])


def rates(paths: list[Path], metric: str, batch_size: int, backend: str, workers: int,
          repeat: int) -> tuple[float, float]:
    """Best (total, steady) images/s of ``repeat`` runs into fresh in-memory stores."""
    best = (0.0, 0.0)
    for _ in range(repeat):
        timed = TimedBackend(make_backend(backend, workers=workers))
        start = time.perf_counter()
        table = score_images(paths, [metric], store=None, batch_size=batch_size,
                             progress=False, backend=timed)
        elapsed = time.perf_counter() - start
        if table.computed != len(paths) or table.failures:
            raise SystemExit(f"unexpected run: computed {table.computed}, "
                             f"{len(table.failures)} failures")
        best = (max(best[0], len(paths) / elapsed), max(best[1], timed.steady_rate()))
    return best


def _show(label: str, rates: tuple[float, float]) -> None:
    load = os.getloadavg()[0]
    print(f"{label:<18} total {rates[0]:7.2f} images/s   steady {rates[1]:7.2f} images/s  "
          f"(load average {load:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images (demo database size)")
    parser.add_argument("--metric", default="piqe", help="metric spec to score with")
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2], help="Ray CPU counts")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting (best kept)")
    parser.add_argument("--local", action="store_true", help="also time the local backend")
    parser.add_argument("--dir", type=Path, default=None, help="where to build the demo")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = (args.dir or Path(tmp)) / f"demo{args.n}"
        root = folder if (folder / "info_train.csv").exists() else build_demo(folder, n=args.n)
        paths = [rec.path for rec in load_database("demo", root, check_images=False)]
        print(f"{len(paths)} images, metric {args.metric}, batch size {args.batch_size}")
        found: dict[int, tuple[float, float]] = {}
        for cpus in args.cpus:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            try:
                found[cpus] = rates(paths, args.metric, args.batch_size, "ray", cpus,
                                    args.repeat)
            finally:
                ray.shutdown()
            _show(f"ray {cpus} CPU(s)", found[cpus])
            if args.local:
                local = rates(paths, args.metric, args.batch_size, "local", cpus, args.repeat)
                _show(f"local {cpus} proc(s)", local)
        first = args.cpus[0]
        for cpus in args.cpus[1:]:
            total, steady = (found[cpus][k] / found[first][k] for k in (0, 1))
            print(f"speed-up ray {cpus} / {first} CPU(s): total {total:.2f}×, "
                  f"steady {steady:.2f}×")

if __name__ == "__main__":
    main()
