"""Full classical benchmark: all AIGIQA-20K images × NIQE, BRISQUE, PIQE through `aigiqa bench`.

The AIGIQA-20K images are not on this machine, so this builds the release layout in ``--root``:
the real annotation files (``info_train/val/test`` from ``$AIGIQA_SHARED/reference/aigiqa20k``,
default ``../shared``) and, under each released name, a seeded synthetic 512×512 RGB PNG with a
1/f spectrum (the ``natural`` images of benchmarks/classical.py). Existing images are kept, so a
second run only times the benchmark. Then it runs, as a user would,

    aigiqa bench --database aigiqa20k --root ROOT -m niqe,brisque,piqe --workers 2 --store NEW

with a fresh score store (nothing cached) and prints the wall time, images per second and the
20,000-image projection when ``--n`` is smaller. The bench's own results (SRCC etc. on synthetic
pixels) mean nothing here; only the time does.

    .venv/bin/python benchmarks/classical_full.py --root /tmp/aigiqa20k-synthetic [--n 20000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from classical import natural  # noqa: E402

SPLIT_SHARE = {"train": 0.7, "val": 0.1, "test": 0.2}


def annotation_tables(shared: Path, n: int) -> dict[str, pd.DataFrame]:
    """The released annotation tables, each cut to its share of n rows (all rows for 20,000)."""
    folder = shared / "reference" / "aigiqa20k"
    tables = {}
    for split, share in SPLIT_SHARE.items():
        path = folder / f"info_{split}.csv"
        table = pd.read_csv(path) if path.exists() else pd.read_excel(folder / f"info_{split}.xlsx")
        tables[split] = table.head(max(1, round(n * share))) if n < 20000 else table
    return tables


def _write_image(job: tuple[Path, int]) -> None:
    path, seed = job
    if not path.exists():
        tmp = path.with_suffix(".part.png")
        Image.fromarray(natural(seed, 512)).save(tmp, compress_level=1)
        tmp.replace(path)


def build_layout(root: Path, tables: dict[str, pd.DataFrame], workers: int) -> int:
    """Write the annotation CSVs and every missing image; return the number of images."""
    root.mkdir(parents=True, exist_ok=True)
    jobs = []
    for split, table in tables.items():
        table.to_csv(root / f"info_{split}.csv", index=False)
        jobs += [(root / str(name), 1000 + len(jobs) + i) for i, name in enumerate(table["name"])]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_image, jobs, chunksize=64))
    return len(jobs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="folder for the release layout")
    parser.add_argument("--n", type=int, default=20000, help="images (default: all 20,000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--metrics", default="niqe,brisque,piqe")
    args = parser.parse_args(argv)
    shared = Path(os.environ.get("AIGIQA_SHARED", Path(__file__).resolve().parents[2] / "shared"))

    t = time.perf_counter()
    n = build_layout(args.root, annotation_tables(shared, args.n), args.workers)
    print(f"layout: {n} images in {args.root} ({time.perf_counter() - t:.0f} s to build)")

    run = args.root / "run"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir()
    command = [
        str(Path(sys.executable).with_name("aigiqa")), "bench", "--database", "aigiqa20k",
        "--root", str(args.root), "-m", args.metrics, "--workers", str(args.workers),
        "--store", str(run / "scores.sqlite"), "--out", str(run / "results"), "--no-progress",
    ]
    print(" ".join(command), flush=True)
    t = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    dt = time.perf_counter() - t
    print(
        f"{n} images x {len(args.metrics.split(','))} metrics, --workers {args.workers}: "
        f"{dt / 60:.1f} min ({n / dt:.1f} images/s, {1000 * dt / n:.1f} ms/image; "
        f"20,000 images: {20000 * dt / n / 60:.1f} min)"
    )


if __name__ == "__main__":
    main()
