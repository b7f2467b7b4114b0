"""The benchmark runner: plan → score (parallel, batched) → cache in the store → evaluate.

``score_images`` scores any list of image files with metrics, reusing every score already in the
store and committing new ones batch by batch (a killed run loses at most the batches in flight).
``run_benchmark`` does it for a Database and hands the frame to the database's evaluation
(``evaluations``: correlations with MOS, or pairwise accuracy on a preference database).

Guarantee after a crash (even SIGKILL) and a re-run: every (metric, image) is scored in the end,
the store holds exactly one row per (metric key, input), and no score that was committed before
the crash is computed again. Only the images in flight at the crash (at most ``batch_size`` ×
``2 × workers`` of them with the local backend) may be computed a second time.

The plan (hashing, store look-up, what still needs scoring) and the commits are done here, in
the calling process; only the execution is a backend's (``backends.LocalBackend``: this process
or worker processes; ``ray_backend.RayBackend``: Ray Data actors), so local and Ray runs share
the store and resume each other.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from aigiqa.benchmark.backends import Backend, Result, WorkItem, make_backend
from aigiqa.benchmark.inputs import (
    align_prompts,
    check_prompts,
    metric_texts,
    read_prompts_csv,
    resolve_metrics,
)
from aigiqa.errors import AigiqaError, MetricError
from aigiqa.images import find_images
from aigiqa.metrics.base import Metric
from aigiqa.metrics.describe import metric_metadata
from aigiqa.store.scores import ScoreStore, StoredScore, open_store, prompt_input_hash

__all__ = ["BenchmarkResult", "ScoreTable", "read_prompts_csv", "resolve_metrics",
           "run_benchmark", "score_files", "score_images"]


@dataclass
class ScoreTable:
    """Scores of images by metrics.

    ``scores``: DataFrame indexed 0..n-1 aligned with the inputs, one float column per metric
    spec, NaN where scoring failed. ``failures``: one dict per failed (image, metric) with keys
    name, path, metric (spec), error. ``computed`` / ``cached``: distinct (metric, input) pairs
    scored in this run / found in the store (failures included in both).
    """

    scores: pd.DataFrame
    failures: list[dict]
    computed: int
    cached: int


@dataclass
class BenchmarkResult:
    """What ``run_benchmark`` returns: the per-image frame (database columns + one column per
    metric spec), the results table, the failures, the run's metadata, the files written (name
    → path; empty without ``out``), the per-group breakdown of a preference bench (else None)
    and the evaluation that made them (``evaluations``: its ``summary_lines``)."""

    frame: pd.DataFrame
    results: Any
    failures: list[dict]
    meta: dict[str, Any]
    outputs: dict[str, Path] = field(default_factory=dict)
    breakdown: pd.DataFrame | None = None
    evaluation: Any = None


# The public API -----------------------------------------------------------------------------
def score_images(
    paths: Sequence[str | Path],
    metrics: Sequence[Metric | str] | str,
    *,
    prompts: Sequence[str | None] | Mapping[str, str] | None = None,
    names: Sequence[str] | None = None,
    generators: Sequence[str | None] | None = None,
    allow_names: bool = False,
    store: ScoreStore | str | Path | None = None,
    workers: int = 1,
    batch_size: int = 8,
    progress: bool = True,
    retry_failed: bool = False,
    backend: str | Backend = "local",
    address: str | None = None,
) -> ScoreTable:
    """Score image files with metrics, reusing and filling the score store.

    ``paths``: n image files. ``metrics``: Metric instances or specs. ``prompts``: n prompts
    (aligned) or a name → prompt map; required by prompt-aware metrics. ``names``: labels used
    in failures and for the prompt map (default: file names). Name-blind unless ``allow_names``:
    then a metric that reads names gets each image's name and ``generators`` entry through its
    ``model_text`` (:mod:`aigiqa.benchmark.inputs`; refused without it). ``store``: a
    ScoreStore, a SQLite path, a URL, or None for an in-memory store. Cached failures are scored
    again only with ``retry_failed``. ``backend``: ``"local"`` (``workers`` processes),
    ``"ray"`` (a local Ray with ``workers`` CPUs, or the cluster at ``address``) or a Backend
    instance. Returns a ScoreTable whose ``scores`` has n rows and one column per spec.
    """
    if workers < 1:
        raise AigiqaError(f"workers must be at least 1, not {workers}")
    if batch_size < 1:
        raise AigiqaError(f"batch_size must be at least 1, not {batch_size}")
    if isinstance(backend, str):
        executor = make_backend(backend, workers=workers, address=address)
    elif address is not None:
        raise AigiqaError("give address only with a backend name, not with a Backend instance")
    else:
        executor = backend
    paths = [p if isinstance(p, Path) else Path(p) for p in paths]
    n = len(paths)
    names = [p.name for p in paths] if names is None else [str(x) for x in names]
    if len(names) != n:
        raise AigiqaError(f"{n} images but {len(names)} names")
    prompt_list = align_prompts(prompts, names)
    metric_list = resolve_metrics(metrics)
    check_prompts(metric_list, names, prompt_list)
    texts = metric_texts(metric_list, prompt_list, names, generators, allow_names)

    db = open_store(store)
    try:
        for metric in metric_list:
            db.register_metric(metric)
        with tqdm(total=n, desc="hashing", unit="img", file=sys.stderr,
                  disable=not progress or n == 0, leave=False) as bar:
            content, load_errors = db.content_hashes(paths, progress=bar.update)

        # Input hash of every (metric, image): the content hash, plus the text where it matters.
        inputs: list[list[str | None]] = []
        for metric, text in zip(metric_list, texts, strict=True):
            if metric.needs_prompt or metric.reads_names:
                inputs.append([None if h is None else prompt_input_hash(h, text[i] or "")
                               for i, h in enumerate(content)])
            else:
                inputs.append(list(content))

        known: list[dict[str, StoredScore]] = []
        for metric, hashes in zip(metric_list, inputs, strict=True):
            found = db.lookup(metric.key, (h for h in hashes if h is not None))
            if retry_failed:
                failed = [h for h, s in found.items() if s.failed]
                if failed:
                    db.forget_failures(metric.key, failed)
                    for h in failed:
                        del found[h]
            known.append(found)
        cached = sum(len(found) for found in known)

        # Plan: each image that still needs some metric, each (metric, input) once; one work
        # item per text the image is read with (the prompt; a metric reading names: its own).
        scheduled: list[set[str]] = [set() for _ in metric_list]
        items: list[WorkItem] = []
        for i in range(n):
            needs: dict[str | None, list[tuple[int, str]]] = {}
            for j in range(len(metric_list)):
                h = inputs[j][i]
                if h is not None and h not in known[j] and h not in scheduled[j]:
                    scheduled[j].add(h)
                    needs.setdefault(texts[j][i], []).append((j, h))
            items += [WorkItem(str(paths[i]), text, tuple(pairs)) for text, pairs in needs.items()]
        computed = sum(len(s) for s in scheduled)

        keys = [m.key for m in metric_list]
        with tqdm(total=computed, desc=f"scoring ({executor.name})", unit="score",
                  file=sys.stderr, disable=not progress or not items) as bar:

            def on_result(results: list[Result]) -> None:
                db.add((keys[j], h, v, e) for j, h, v, e in results)  # one commit per batch
                for j, h, v, e in results:
                    known[j][h] = StoredScore(v, e)
                bar.update(len(results))

            if items:
                executor.run(items, metric_list, batch_size, on_result)

        columns: dict[str, np.ndarray] = {}
        failures: list[dict] = []
        for j, metric in enumerate(metric_list):
            values = np.full(n, np.nan)
            for i in range(n):
                h = inputs[j][i]
                if h is None:
                    error = load_errors[i]
                else:
                    stored = known[j][h]
                    if stored.value is not None:
                        values[i] = stored.value
                        continue
                    error = stored.error or "scoring failed"
                failures.append(
                    {"name": names[i], "path": str(paths[i]), "metric": metric.spec,
                     "error": error}
                )
            columns[metric.spec] = values
        scores = pd.DataFrame(columns, index=pd.RangeIndex(n))
        return ScoreTable(scores=scores, failures=failures, computed=computed, cached=cached)
    finally:
        if db is not store:
            db.close()


def score_files(
    inputs: Sequence[str | Path],
    metrics: Sequence[Metric | str] | str,
    *,
    prompts_csv: str | Path | None = None,
    store: ScoreStore | str | Path | None = None,
    workers: int = 1,
    batch_size: int = 8,
    progress: bool = True,
    retry_failed: bool = False,
    backend: str | Backend = "local",
    address: str | None = None,
) -> tuple[pd.DataFrame, ScoreTable]:
    """``aigiqa score``: score files and folders (searched recursively) of a user's images.

    Prompts come from ``prompts_csv`` by image file name (or by name without extension).
    Returns (frame with columns name, path and one per metric spec — one row per image, the
    ScoreTable).
    """
    paths = find_images(list(inputs))
    if not paths:
        raise AigiqaError(f"no image files found in {', '.join(map(str, inputs))}")
    names = [p.name for p in paths]
    prompts: list[str | None] | None = None
    if prompts_csv is not None:
        table = read_prompts_csv(prompts_csv)
        prompts = [table.get(p.name, table.get(p.stem)) for p in paths]
    result = score_images(
        paths, metrics, prompts=prompts, names=names, store=store, workers=workers,
        batch_size=batch_size, progress=progress, retry_failed=retry_failed, backend=backend,
        address=address,
    )
    frame = pd.concat(
        [pd.DataFrame({"name": names, "path": [str(p) for p in paths]}), result.scores], axis=1
    )
    return frame, result


def run_benchmark(
    database,
    metrics: Sequence[Metric | str] | str,
    *,
    store: ScoreStore | str | Path | None = "aigiqa-scores.sqlite",
    out: str | Path | None = None,
    workers: int = 1,
    progress: bool = True,
    bootstrap: int = 1000,
    seed: int = 0,
    batch_size: int = 8,
    retry_failed: bool = False,
    backend: str | Backend = "local",
    address: str | None = None,
    accuracy_rule: str | None = None,
    pairs_min_gap: float | None = None,
    pairs_by: str = "prompt",
    allow_names: bool = False,
) -> BenchmarkResult:
    """Score every image of a Database with every metric (cached), evaluate, and write outputs.

    ``frame``: ``database.to_frame()`` plus one column per metric spec (NaN where scoring
    failed). The evaluation is ``evaluations.choose_evaluation``'s: on a MOS database
    ``results.summarize`` per split, generator and hyper-parameter; on a preference database
    (or with ``pairs_min_gap``, on the pairs a MOS implies within each ``pairs_by``: prompt,
    generator, split or all) pairwise accuracy under
    ``accuracy_rule`` (default: the database's own), with the per-group ``breakdown``. With
    ``out`` the files (scores.csv, results.csv, results.json, report.html[, groups.csv]) are
    written there. ``allow_names``: metrics that read names get each record's name and
    generator (refused without it; those rows say ``name_blind`` False).
    """
    from aigiqa import __version__
    from aigiqa.benchmark import provenance
    from aigiqa.benchmark.evaluations import choose_evaluation

    evaluation = choose_evaluation(database, accuracy_rule=accuracy_rule,
                                   pairs_min_gap=pairs_min_gap, pairs_by=pairs_by,
                                   bootstrap=bootstrap, seed=seed)
    if out is not None:
        evaluation.check_output(out)  # before any scoring: a bad --out must not waste the run
    metric_list = resolve_metrics(metrics)
    frame = database.to_frame()
    clash = [m.spec for m in metric_list if m.spec in frame.columns]
    if clash:
        raise MetricError(f"metric spec(s) {', '.join(clash)} clash with database columns")
    table = score_images(
        [rec.path for rec in database], metric_list, prompts=[rec.prompt for rec in database],
        names=[rec.name for rec in database], generators=[rec.generator for rec in database],
        allow_names=allow_names, store=store, workers=workers,
        batch_size=batch_size, progress=progress, retry_failed=retry_failed, backend=backend,
        address=address,
    )
    for column in table.scores.columns:
        frame[column] = table.scores[column].to_numpy()
    meta_metrics = [metric_metadata(m) for m in metric_list]
    results, breakdown = evaluation.evaluate(frame, meta_metrics)
    results = provenance.annotate(results, meta_metrics, database.name,
                                  str(database.root))  # protocol and mode of each number
    meta: dict[str, Any] = {
        "database": database.name,
        "root": str(database.root),
        "target": database.info.main_target,
        "score_range": [float(x) for x in database.info.score_range],
        "metrics": meta_metrics,
        "failures": table.failures,
        "computed": table.computed,
        "cached": table.cached,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "aigiqa_version": __version__,
        **evaluation.meta,
    }
    outputs: dict[str, Path] = {}
    if out is not None:
        try:
            written = evaluation.write(Path(out), frame, results, breakdown, meta)
        except AigiqaError as exc:
            if store is None:  # in memory: nothing is kept
                raise
            raise AigiqaError(f"{exc}; the scores are kept in the store: run again with a "
                              "writable --out to write the results without scoring again") from exc
        outputs = {str(k): Path(v) for k, v in (written or {}).items()}
    return BenchmarkResult(frame, results, table.failures, meta, outputs, breakdown, evaluation)
