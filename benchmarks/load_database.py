"""Time loading the real AIGIQA-20K annotation files (check_images=False); best of N runs.

    python benchmarks/load_database.py [--root ../shared/reference/aigiqa20k] [--repeat 5]

Prints the best wall time of ``load_database`` on the folder as released (train from csv, val and
test from xlsx), the same with ``follow_symlinks=True`` (no symbolic-link checks: the difference is
the cost of keeping image paths inside the folder), with the 20,000 image files present (empty
files in train/ val/ test/, so every check finds a file), with every split read from xlsx, and the
time of each file read. Target: < 2 s for the release folder.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aigiqa import load_database
from aigiqa.databases.aigiqa20k import COLUMNS
from aigiqa.databases.tables import read_table

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = Path(os.environ.get("AIGIQA_SHARED", REPO.parent / "shared")) / "reference/aigiqa20k"


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = args.root

    db = load_database("aigiqa20k", root, check_images=False)  # warm-up (imports, file cache)
    print(f"{len(db)} records, {len(db.generators)} generators, {len(db.labelled())} with MOS")
    t = best_of(lambda: load_database("aigiqa20k", root, check_images=False), args.repeat)
    print(f"load_database('aigiqa20k') as released (csv train + xlsx val/test): {t:.3f} s "
          f"(best of {args.repeat}) -> {'OK' if t < 2 else 'SLOWER THAN'} 2 s target")

    t = best_of(lambda: load_database("aigiqa20k", root, check_images=False,
                                      follow_symlinks=True), args.repeat)
    print(f"  the same with follow_symlinks=True (no link checks): {t:.3f} s")

    with tempfile.TemporaryDirectory() as tmp:
        for name in ("info_train.csv", "info_val.xlsx", "info_test.xlsx"):
            Path(tmp, name).symlink_to(root / name)
        for rec in db:
            folder = Path(tmp, rec.split)
            folder.mkdir(exist_ok=True)
            (folder / rec.name).touch()
        t = best_of(lambda: load_database("aigiqa20k", tmp, check_images=False), args.repeat)
        print(f"  the same with the {len(db)} image files present: {t:.3f} s")

    with tempfile.TemporaryDirectory() as tmp:
        for split in ("train", "val", "test"):
            Path(tmp, f"info_{split}.xlsx").symlink_to(root / f"info_{split}.xlsx")
        t = best_of(lambda: load_database("aigiqa20k", tmp, check_images=False), args.repeat)
        print(f"load_database('aigiqa20k') all xlsx: {t:.3f} s (best of {args.repeat})")

    for name in ("info_train.csv", "info_train.xlsx", "info_val.xlsx", "info_test.xlsx"):
        path = root / name
        if path.is_file():
            t = best_of(lambda p=path: read_table(p, COLUMNS, required=["name"]), args.repeat)
            print(f"  read_table({name}): {t:.3f} s")


if __name__ == "__main__":
    main()
