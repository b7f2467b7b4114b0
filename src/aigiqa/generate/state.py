"""The state of a generation folder: its plan copy, its log, its release tables.

``DIR/.aigiqa-generate/plan.csv`` is the plan the folder was made from (a rerun with a plan that
changes an existing image's row is refused). ``DIR/.aigiqa-generate/log.jsonl`` has one line
per finished image, appended and fsynced after its file was written: ``status`` ``ok`` or
``failed`` (with ``reason``), the pipeline's weights sha256, scheduler, device, dtype, library
versions and seconds. An image is finished when its line is there (and, if ok, its file); a
torn last line of a killed run is ignored. The tables (``info_<split>.csv``,
``hyperparameters.csv``, ``failures.csv``) are written from plan and log at the end of a run.
``DIR/.aigiqa-generate/lock`` is held (``flock``) by the one run or import writing the folder;
the system releases it when that process ends, also on SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from aigiqa.errors import GenerateError
from aigiqa.files import reason, write_text
from aigiqa.generate.plan import SPLITS

__all__ = ["STATE", "HYPER_COLUMNS", "read_log", "append_log", "check_plan_copy", "keep_plan_copy",
           "write_tables", "image_path", "folder_lock"]

STATE = ".aigiqa-generate"
#: Columns of hyperparameters.csv.
HYPER_COLUMNS = ("name", "generator", "split", "seed", "steps", "cfg", "width", "height",
                 "scheduler", "pipeline", "weights_sha256", "dtype", "device", "versions",
                 "prompt_tokens_dropped")
_IDENTITY = ("generator", "prompt", "seed", "steps", "cfg", "width", "height", "scheduler",
             "split", "pipeline", "negative_prompt", "variant", "kwargs")


def image_path(out: Path, row: Any) -> Path:
    """Where the image of a plan row lies: ``DIR/<split>/<name>``."""
    return out / str(row["split"]) / str(row["name"])


@contextlib.contextmanager
def folder_lock(out: Path, what: str) -> Iterator[None]:
    """Hold ``DIR/.aigiqa-generate/lock`` while ``what`` writes the folder; GenerateError at
    once when another process holds it (an flock: released by the system when its holder
    ends, even killed). Without ``fcntl`` (Windows) no lock is taken."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    (out / STATE).mkdir(parents=True, exist_ok=True)
    path = out / STATE / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise GenerateError(f"{out}: {holder} is writing this folder ({path} is locked); "
                                f"wait for it to end, or choose another --out for {what}"
                                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"aigiqa generate {what} (pid {os.getpid()})".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_log(out: Path) -> dict[str, dict]:
    """name → last log entry (torn lines skipped)."""
    path = out / STATE / "log.jsonl"
    entries: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "name" in entry:
                entries[str(entry["name"])] = entry
    return entries


def append_log(out: Path, entries: list[dict]) -> None:
    """Append entries as json lines and fsync (after their images were written). A line torn
    by a kill is ended first (so it cannot swallow the next entry); a failed append (a full
    disk) is cut off again and raised as a GenerateError: the log stays whole, and the images
    it does not name are made again by the next run."""
    path = out / STATE / "log.jsonl"
    data = "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in entries).encode()
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise GenerateError(f"{path}: cannot open the run log ({reason(exc)})") from exc
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        if start and os.pread(fd, 1, start - 1) != b"\n":
            data = b"\n" + data
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise GenerateError(
                f"{path}: cannot log {len(entries)} finished image(s) ({reason(exc)}); nothing "
                "is corrupted: free space and run again (unlogged images are made again)"
            ) from exc
    finally:
        os.close(fd)


def check_plan_copy(out: Path, plan: pd.DataFrame, plan_file: str) -> None:
    """Refuse a plan that changes a row of the folder's plan (GenerateError naming the row)."""
    copy = out / STATE / "plan.csv"
    if copy.is_file():
        old = pd.read_csv(copy, dtype=str, keep_default_na=False)
        new = plan.astype(str).reset_index(drop=True)
        columns = [c for c in _IDENTITY if c in old.columns]
        both = new[["name", *columns]].merge(old[["name", *columns]], on="name",
                                              suffixes=("", "_old"), how="inner", sort=False)
        differs = pd.DataFrame({c: both[c] != both[f"{c}_old"] for c in columns})
        for i in differs.index[differs.any(axis=1)][:1]:
            row = both.loc[i]
            changed = [c for c in columns if differs.at[i, c]]
            if changed:
                line = int(new.index[new["name"] == row["name"]][0]) + 2
                raise GenerateError(
                    f"{plan_file} row {line}: image {row['name']!r} was planned with other "
                    f"{', '.join(changed)} in {out}; use another --out, or the plan that made it")


def keep_plan_copy(out: Path, plan: pd.DataFrame) -> None:
    """Write the plan copy of the folder (after :func:`check_plan_copy`)."""
    write_text(out / STATE / "plan.csv", plan.to_csv(index=False), "the plan copy")


def remove_stale_temporaries(out: Path) -> int:
    """Remove temporary image files a killed run left (``.<name>.*.tmp``); their count."""
    removed = 0
    for split in SPLITS:
        folder = out / split
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def write_tables(out: Path, plan: pd.DataFrame, log: dict[str, dict]) -> dict[str, int]:
    """info_<split>.csv (name, prompt, empty mos), hyperparameters.csv, failures.csv from the
    plan (its order) and the log; counts of ok and failed images."""
    ok_rows, failed = [], []
    for _, row in plan.iterrows():
        entry = log.get(row["name"])
        if entry is None:
            continue
        if entry.get("status") == "ok" and image_path(out, row).is_file():
            ok_rows.append((row, entry))
        elif entry.get("status") == "failed":
            failed.append({"name": row["name"], "generator": row["generator"],
                           "split": row["split"], "seed": row["seed"],
                           "reason": entry.get("reason", "")})
    for split in SPLITS:
        info = pd.DataFrame([{"name": r["name"], "prompt": r["prompt"], "mos": ""}
                             for r, _ in ok_rows if r["split"] == split],
                            columns=["name", "prompt", "mos"])
        write_text(out / f"info_{split}.csv", info.to_csv(index=False), f"info_{split}.csv")
    hyper = pd.DataFrame([{
        "name": r["name"], "generator": r["generator"], "split": r["split"], "seed": r["seed"],
        "steps": r["steps"], "cfg": r["cfg"], "width": r["width"], "height": r["height"],
        "scheduler": e.get("scheduler", r["scheduler"]), "pipeline": r["pipeline"],
        "weights_sha256": e.get("weights_sha256", ""), "dtype": e.get("dtype", ""),
        "device": e.get("device", ""), "versions": e.get("versions", ""),
        "prompt_tokens_dropped": int(e.get("prompt_tokens_dropped", 0)),
    } for r, e in ok_rows], columns=list(HYPER_COLUMNS))
    write_text(out / "hyperparameters.csv", hyper.to_csv(index=False), "hyperparameters.csv")
    failures = pd.DataFrame(failed, columns=["name", "generator", "split", "seed", "reason"])
    write_text(out / "failures.csv", failures.to_csv(index=False), "failures.csv")
    truncated = sum(int(e.get("prompt_tokens_dropped", 0)) > 0 for _, e in ok_rows)
    return {"ok": len(ok_rows), "failed": len(failed), "truncated": truncated}
