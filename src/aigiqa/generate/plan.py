"""Generation plans: prompts x generators x (steps, CFG, size) → one row per image.

Every choice is seeded: the same prompts, generators file and seed give the same plan. Prompts
are shuffled once and dealt to the generators in turn (a running pointer that wraps), so every
prompt is used by about the same number of generators (counts differ by at most one) and a
generator repeats a prompt only when it has more images than there are prompts. Steps, CFG and
sizes are dealt in proportion to their weights (largest remainder, then shuffled), and so are
the splits (default 7:1:2), per generator. Seeds come from (plan seed, generator name), so
adding a generator leaves the others' seeds alone.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aigiqa.errors import GenerateError
from aigiqa.generate.config import GeneratorSpec

__all__ = ["PLAN_COLUMNS", "make_plan", "read_plan", "write_plan", "summarize_plan",
           "parse_ratios"]

PLAN_COLUMNS = ("name", "generator", "prompt", "category", "seed", "steps", "cfg", "width",
                "height", "scheduler", "split", "pipeline", "negative_prompt", "dtype",
                "variant", "kwargs", "external")
SPLITS = ("train", "val", "test")
_INT = ("seed", "steps", "width", "height")
#: An image name: a plain PNG file name (it is joined to the output folder, so no folder part).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.png$")


def parse_ratios(text: str) -> tuple[float, float, float]:
    """``"7:1:2"`` → train/val/test weights; GenerateError naming ``--splits`` otherwise."""
    parts = str(text).split(":")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or any(v < 0 for v in values) or sum(values) <= 0:
        raise GenerateError(f"--splits {text!r}: give three non-negative train:val:test "
                            "weights, e.g. 7:1:2")
    return values  # type: ignore[return-value]


def deal(n: int, weights: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Indices 0..len(weights)-1, ``n`` of them in proportion to ``weights`` (largest
    remainder; ties to the first), shuffled."""
    w = np.asarray(weights, dtype=float) / float(np.sum(weights))
    exact = w * n
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    return rng.permutation(np.repeat(np.arange(len(w)), counts))


def make_plan(prompts: Sequence[tuple[str, str]], generators: Sequence[GeneratorSpec], *,
              seed: int = 0, splits: Sequence[float] = (7, 1, 2)) -> pd.DataFrame:
    """The plan table (columns :data:`PLAN_COLUMNS`), generators in the given order."""
    if not prompts:
        raise GenerateError("make_plan: no prompts")
    order = np.random.default_rng([seed, 0]).permutation(len(prompts))
    pointer = 0
    rows = []
    for spec in generators:
        rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode())])
        take = order[(pointer + np.arange(spec.count)) % len(order)]
        pointer = (pointer + spec.count) % len(order)
        steps = deal(spec.count, spec.steps_weights, rng)
        cfg = deal(spec.count, spec.cfg_weights, rng)
        sizes = deal(spec.count, spec.sizes_weights, rng)
        split = deal(spec.count, splits, rng)
        seeds = rng.integers(0, 2**31 - 1, size=spec.count)
        digits = max(4, len(str(spec.count - 1)))
        kwargs = json.dumps(spec.kwargs, sort_keys=True)
        for i in range(spec.count):
            prompt, category = prompts[int(take[i])]
            w, h = spec.sizes[sizes[i]]
            rows.append({
                "name": f"{spec.prefix}_{i:0{digits}d}.png", "generator": spec.name,
                "prompt": prompt, "category": category, "seed": int(seeds[i]),
                "steps": spec.steps[steps[i]], "cfg": spec.cfg[cfg[i]], "width": w,
                "height": h, "scheduler": spec.scheduler or "default",
                "split": SPLITS[split[i]], "pipeline": spec.pipeline,
                "negative_prompt": spec.negative_prompt, "dtype": spec.dtype,
                "variant": spec.variant, "kwargs": kwargs, "external": spec.external,
            })
    return pd.DataFrame(rows, columns=list(PLAN_COLUMNS))


def write_plan(plan: pd.DataFrame, path: str | Path) -> Path:
    """Write the plan as csv (atomically: a killed writer leaves no half file)."""
    from aigiqa.files import check_file, write_text

    path = check_file(path, "the plan file", "--out")
    return write_text(path, plan.to_csv(index=False), "the plan file")


def read_plan(path: str | Path) -> pd.DataFrame:
    """A plan csv, checked: columns, integer and number cells, sizes multiple of 8, unique
    names, splits. GenerateError naming the file and row of every fault."""
    path = Path(path)
    if not path.is_file():
        raise GenerateError(f"{path}: plan file not found (make one with aigiqa generate plan)")
    try:
        plan = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise GenerateError(f"{path}: cannot read the plan ({exc})") from None
    missing = [c for c in PLAN_COLUMNS if c not in plan.columns]
    if missing:
        raise GenerateError(f"{path}: missing column(s) {', '.join(missing)} (columns: "
                            f"{', '.join(plan.columns)})")
    problems = []
    for column in (*_INT, "cfg"):
        values = pd.to_numeric(plan[column], errors="coerce")
        for i in np.flatnonzero(values.isna().to_numpy()):
            problems.append(f"{path} row {i + 2}: {column} {plan[column][i]!r} is not a number")
        plan[column] = values
    if problems:
        raise GenerateError(f"{path}: bad cells", problems)
    for column in _INT:
        plan[column] = plan[column].astype(int)
    plan["cfg"] = plan["cfg"].astype(float)
    plan["external"] = plan["external"].str.lower().isin(("true", "1", "yes"))
    for i, row in plan.iterrows():
        where = f"{path} row {int(i) + 2}"
        if not _NAME.match(str(row["name"])):
            problems.append(f"{where}: name {row['name']!r} is not a plain file name ending in "
                            ".png (letters, digits, '.', '-', '_'; no folder)")
        if row["width"] <= 0 or row["height"] <= 0 or row["width"] % 8 or row["height"] % 8:
            problems.append(f"{where}: size {row['width']}x{row['height']} is not a multiple "
                            "of 8")
        if row["steps"] < 1:
            problems.append(f"{where}: steps {row['steps']} < 1")
        if row["split"] not in SPLITS:
            problems.append(f"{where}: split {row['split']!r} is not one of {', '.join(SPLITS)}")
        if not row["pipeline"] and not row["external"]:
            problems.append(f"{where}: no pipeline for generator {row['generator']!r}")
        try:
            json.loads(row["kwargs"] or "{}")
        except ValueError:
            problems.append(f"{where}: kwargs {row['kwargs']!r} is not JSON")
    for generator, rows in plan.groupby("generator", sort=False):
        for column in ("pipeline", "scheduler", "dtype", "variant", "external"):
            if rows[column].nunique() > 1:
                second = int(rows.index[rows[column] != rows[column].iloc[0]][0]) + 2
                problems.append(f"{path} row {second}: generator {generator!r} has another "
                                f"{column} than at row {int(rows.index[0]) + 2} (one pipeline "
                                "per generator)")
    dup = plan["name"][plan["name"].duplicated()]
    problems += [f"{path} row {int(i) + 2}: duplicate name {n!r}" for i, n in dup.items()]
    if problems:
        raise GenerateError(f"{path}: the plan has faults", problems)
    return plan


def summarize_plan(plan: pd.DataFrame) -> str:
    """Counts per generator x split, and per generator x steps / cfg / size, as text."""
    frame = plan.assign(size=plan["width"].astype(str) + "x" + plan["height"].astype(str))
    parts = [f"{len(plan)} images, {plan['generator'].nunique()} generators, "
             f"{plan['prompt'].nunique()} prompts"]
    external = sorted(plan.loc[plan["external"].astype(bool), "generator"].unique())
    if external:
        parts.append(f"external (not generated here): {', '.join(external)}")
    for column in ("split", "steps", "cfg", "size", "scheduler"):
        table = pd.crosstab(frame["generator"], frame[column], margins=True, margins_name="all")
        table = table.reindex(index=[*dict.fromkeys(frame["generator"]), "all"])
        parts.append(f"\nper {column}:\n{table.to_string()}")
    return "\n".join(parts)
