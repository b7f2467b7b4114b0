"""Benchmark outputs: scores.csv, results.csv, results.json and a self-contained report.html.

Every file is written atomically (:func:`aigiqa.files.atomic_write`: temporary file beside it,
fsync, rename), so a killed run never leaves a half-written result. The report is rebuilt from
the folder alone (``results.json`` + ``scores.csv``); plots are matplotlib figures (Agg canvas,
imported lazily) embedded as base64 PNG.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import pandas as pd

from aigiqa.benchmark import plots, provenance
from aigiqa.benchmark.evaluations import PAIRWISE
from aigiqa.errors import AigiqaError
from aigiqa.files import atomic_write, check_file, check_folder, reason, write_text

SCORES = "scores.csv"
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
REPORT = "report.html"
_DASH = "\u2013"


class ReportError(AigiqaError):
    """A results folder that cannot be read back or reported (missing or malformed file)."""


# Writing ------------------------------------------------------------------------------------------
def write_outputs(out: Path, frame: pd.DataFrame, results: pd.DataFrame, meta: dict
                  ) -> dict[str, Path]:
    """Write scores.csv, results.csv, results.json and report.html into ``out`` (created).

    ``frame``: one row per image (``Database.to_frame()`` plus one score column per metric spec).
    ``results``: the evaluation's table (:func:`aigiqa.benchmark.results.summarize`, or a
    preference bench's). ``meta``: run metadata (database, root, target, score_range, metrics,
    failures, computed, cached, created, aigiqa_version, evaluation). Returns the paths under
    keys ``scores``, ``results_csv``, ``results_json`` and ``report``.
    """
    check_output_folder(out)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"{out}: cannot create the results folder ({reason(exc)})") from exc
    paths = {
        "scores": out / SCORES,
        "results_csv": out / RESULTS_CSV,
        "results_json": out / RESULTS_JSON,
    }
    payload = {"meta": _jsonable(meta), "results": _jsonable(results.to_dict(orient="records"))}
    text = json.dumps(payload, indent=1, allow_nan=False) + "\n"
    try:
        for path, table in ((paths["scores"], frame), (paths["results_csv"], results)):
            with atomic_write(path, f"the results file {path.name}", binary=False) as handle:
                table.to_csv(handle, index=False)  # streamed: no copy of the table as text
        write_text(paths["results_json"], text, f"the results file {RESULTS_JSON}")
    except AigiqaError as exc:
        raise ReportError(str(exc)) from exc
    paths["report"] = build_report(out)
    return paths


def check_output_folder(out: str | Path) -> Path:
    """``out`` (absolute) if the results can be written there; ReportError naming it otherwise
    (``run_benchmark`` calls this before scoring, so a bad ``--out`` fails at once)."""
    try:
        folder = check_folder(out, "the results folder", "--out")
        for name in (SCORES, RESULTS_CSV, RESULTS_JSON, REPORT):
            check_file(folder / name, f"the results file {name}", "--out")
    except AigiqaError as exc:
        raise ReportError(str(exc)) from None
    return folder


def read_results(out: Path) -> tuple[dict, pd.DataFrame]:
    """Read ``out/results.json`` back: (meta, results table with NaN where JSON has null)."""
    path = Path(out) / RESULTS_JSON
    if not path.is_file():
        raise ReportError(f"{path}: no results.json in this folder; run `aigiqa bench` first "
                          "(it writes results.json, results.csv, scores.csv and report.html)")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a readable results file ({exc})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list) \
            or not isinstance(payload.get("meta"), dict):
        raise ReportError(f"{path}: expected an object with 'meta' (object) and 'results' (list)")
    rows = payload["results"]
    results = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["metric", "group", "value"])
    for col in results.columns:
        if col not in ("metric", "group", "value"):
            results[col] = pd.to_numeric(results[col], errors="coerce") \
                if results[col].isna().any() else results[col]
    return payload["meta"], results


def build_report(out: Path) -> Path:
    """Rebuild ``out/report.html`` from ``out/results.json`` and ``out/scores.csv``; its path."""
    out = Path(out)
    meta, results = read_results(out)
    if meta.get("evaluation") == PAIRWISE:  # a preference bench: its own page
        from aigiqa.benchmark.preference_report import build_preference_report
        return build_preference_report(out, meta, results)
    scores_path = out / SCORES
    if not scores_path.is_file():
        raise ReportError(f"{scores_path}: missing; the report needs the per-image scores "
                          "written by `aigiqa bench` next to results.json")
    try:
        scores = pd.read_csv(scores_path, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ReportError(f"{scores_path}: not a readable scores file ({exc})") from None
    path = out / REPORT
    try:
        write_text(path, render_html(meta, results, scores), f"the results file {REPORT}")
    except AigiqaError as exc:
        raise ReportError(str(exc)) from exc
    return path


def _jsonable(obj: Any) -> Any:
    """``obj`` with NaN/inf as None, numpy scalars as Python, paths and dates as text."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | np.ndarray):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, dt.datetime | dt.date):
        return obj.isoformat()
    return None if obj is pd.NA or obj is pd.NaT else str(obj)


# Rendering ----------------------------------------------------------------------------------------
def render_html(meta: dict, results: pd.DataFrame, scores: pd.DataFrame) -> str:
    """The report as one HTML string (inline CSS and base64 PNG plots)."""
    metrics = _metric_info(meta, results)
    target = str(meta.get("target") or "")
    sections = [
        ("summary", "Summary", _main_section(results, metrics)),
        ("protocols", "Protocols", provenance.section(meta, metrics)),
        ("splits", "Per split", _group_section(results, metrics, "split", ("srcc", "plcc",
                                               "krcc", "main")) + _blind_note(scores, target)),
        ("scatter", "Prediction vs " + (target or "target"),
         _scatter_section(scores, results, metrics, target)),
        ("generators", "Per generator", _generator_section(results, metrics)),
        ("hyper", "Per hyper-parameter", _hyper_section(results, metrics)),
        ("failures", "Failures", _failures_section(meta.get("failures") or [])),
    ]
    nav = "".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title, _ in sections)
    body = [_header(meta, scores, target), f"<nav>{nav}</nav>"]
    body += [f'<h2 id="{key}">{html.escape(title)}</h2>\n{content}'
             for key, title, content in sections]
    template = Template(Path(__file__).with_name(REPORT).read_text(encoding="utf-8"))
    return template.substitute(
        title=html.escape(f"aigiqa benchmark {_DASH} {meta.get('database', '')}"),
        version=html.escape(str(meta.get("aigiqa_version", ""))),
        body="\n".join(body),
    )


def _metric_info(meta: dict, results: pd.DataFrame) -> dict[str, dict]:
    """Metric spec → its meta dict (every metric of the results, in meta order first)."""
    info = {str(m.get("spec", m.get("name"))): dict(m) for m in meta.get("metrics") or []}
    for spec in results.get("metric", pd.Series(dtype=str)).drop_duplicates():
        info.setdefault(str(spec), {"spec": str(spec)})
    return info


def _header(meta: dict, scores: pd.DataFrame, target: str) -> str:
    n = len(scores)
    labelled = int(pd.to_numeric(scores[target], errors="coerce").notna().sum()) \
        if target in scores.columns else 0
    fields = [
        ("database", meta.get("database")),
        ("root", meta.get("root")),
        ("images", f"{n:,} ({labelled:,} labelled, {n - labelled:,} blind)"),
        ("target", f"{target}" + (f" (range {_range(meta.get('score_range'))})"
                                  if meta.get("score_range") else "")),
        ("metrics", len(meta.get("metrics") or [])),
        ("scores", f"{meta.get('computed', _DASH)} computed, {meta.get('cached', _DASH)} cached, "
                   f"{len(meta.get('failures') or [])} failed"),
        ("created", meta.get("created")),
        ("aigiqa", meta.get("aigiqa_version")),
    ]
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>"
                   for k, v in fields if v not in (None, ""))
    title = html.escape(f"Benchmark: {meta.get('database', 'unknown database')}")
    return f"<h1>{title}</h1>\n<dl class=\"meta\">{rows}</dl>"


def _range(value: Any) -> str:
    try:
        lo, hi = value
        return f"{lo:g}{_DASH}{hi:g}"
    except (TypeError, ValueError):
        return str(value)


def _metric_label(spec: str, info: Mapping[str, dict]) -> str:
    """Escaped metric name with a ↓ mark when lower scores mean better quality."""
    down = ' <span class="tag" title="lower score = better quality">\u2193</span>' \
        if info.get(spec, {}).get("lower_better") else ""
    return f"{html.escape(spec)}{down}"


def _fmt(x: Any, digits: int = 3) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return _DASH
    return f"{x:.{digits}f}" if math.isfinite(x) else _DASH


def _best(values: pd.Series, higher: bool, digits: int = 3) -> set:
    """Index labels whose value (rounded as displayed) is the best of the column."""
    v = pd.to_numeric(values, errors="coerce").round(digits)
    if v.notna().sum() < 2:
        return set()
    best = v.max() if higher else v.min()
    return set(v.index[v == best])


def _cell(text: str, bold: bool, title: str = "") -> str:
    attr = f' title="{html.escape(title)}"' if title else ""
    return f"<td{attr}><b>{text}</b></td>" if bold else f"<td{attr}>{text}</td>"


def _main_section(results: pd.DataFrame, info: Mapping[str, dict]) -> str:
    rows = results[results["group"] == "all"].set_index("metric") if len(results) else results
    if not len(rows):
        return '<p class="note">No results.</p>'
    stats = [("srcc", "SRCC", True), ("plcc", "PLCC", True), ("krcc", "KRCC", True),
             ("main", "main", True), ("rmse", "RMSE", False)]
    best = {s: _best(rows[s], hi) for s, _, hi in stats if s in rows.columns}
    head = "".join(f"<th>{label}</th>" for _, label, _ in stats)
    out = [f'<div class="scroll"><table><tr><th class="l">metric</th><th class="l">kind</th>'
           f"<th>n</th><th>failed</th>{head}</tr>"]
    for spec, row in rows.iterrows():
        kind = html.escape(str(info.get(spec, {}).get("kind") or ""))
        cells = [f'<td class="l">{_metric_label(spec, info)}</td><td class="l">{kind}</td>',
                 f"<td>{int(row['n']):,}</td><td>{int(row.get('n_failed', 0)):,}</td>"]
        for s, _, _ in stats:
            text = _fmt(row.get(s))
            lo, hi = row.get(f"{s}_ci_low"), row.get(f"{s}_ci_high")
            if _fmt(lo) != _DASH and _fmt(hi) != _DASH:
                text += f" <small>[{_fmt(lo)}, {_fmt(hi)}]</small>"
            cells.append(_cell(text, spec in best.get(s, ())))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    out.append('<p class="note">All labelled images (blind ones never enter). Brackets: 95% '
               "bootstrap confidence interval. PLCC and RMSE after the fitted logistic mapping; "
               "main = the benchmark's main score. Bold: best of the column. \u2193: lower score "
               "means better quality (its sign is flipped before the correlations, so higher is "
               "better in every column but RMSE). A dash: fewer than 3 scored images.</p>")
    return "\n".join(out)


def _group_section(results: pd.DataFrame, info: Mapping[str, dict], group: str,
                   stats: Sequence[str]) -> str:
    """Table with one row per metric and, per value of ``group``, the chosen statistics."""
    sub = results[results["group"] == group] if len(results) else results
    if not len(sub):
        return f'<p class="note">No {html.escape(group)} with labelled images.</p>'
    values = list(dict.fromkeys(sub["value"].astype(str)))
    specs = list(dict.fromkeys(sub["metric"]))
    table = sub.assign(value=sub["value"].astype(str)).set_index(["metric", "value"])
    head1 = "".join(f'<th colspan="{len(stats)}" class="l">{html.escape(v)} '
                    f'<span class="tag">n={_group_n(table, v)}</span></th>' for v in values)
    head2 = "".join(f"<th>{s.upper() if s != 'main' else 'main'}</th>"
                    for _ in values for s in stats)
    out = [f'<div class="scroll"><table><tr><th class="l" rowspan="2">metric</th>{head1}</tr>'
           f"<tr>{head2}</tr>"]
    best = {}
    for v in values:
        col = table.xs(v, level="value")
        for s in stats:
            best[(v, s)] = _best(col[s], True)
    for spec in specs:
        cells = [f'<td class="l">{_metric_label(spec, info)}</td>']
        for v in values:
            row = table.loc[(spec, v)] if (spec, v) in table.index else None
            for s in stats:
                if row is None:
                    cells.append(f"<td>{_DASH}</td>")
                    continue
                cells.append(_cell(_fmt(row[s]), spec in best[(v, s)],
                                   f"n={int(row['n'])}, failed={int(row['n_failed'])}"))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    return "\n".join(out)


def _blind_note(scores: pd.DataFrame, target: str) -> str:
    """A note naming the splits without any label (never evaluated)."""
    if "split" not in scores.columns or target not in scores.columns:
        return ""
    labelled = pd.to_numeric(scores[target], errors="coerce").notna()
    counts = scores.assign(_l=labelled).groupby("split", sort=False)["_l"].agg(["sum", "size"])
    blind = [f"{name} ({int(row['size']):,} images)" for name, row in counts.iterrows()
             if row["sum"] == 0]
    if not blind:
        return ""
    return (f'<p class="note">Blind split(s), no public {html.escape(target)}, not evaluated: '
            f"{html.escape(', '.join(map(str, blind)))}.</p>")


def _group_n(table: pd.DataFrame, value: str) -> str:
    """Labelled images of one group value (scored + failed, the largest over metrics)."""
    col = table.xs(value, level="value")
    return f"{int((col['n'] + col['n_failed']).max()):,}"


def _generator_section(results: pd.DataFrame, info: Mapping[str, dict]) -> str:
    sub = results[results["group"] == "generator"] if len(results) else results
    if not len(sub):
        return '<p class="note">No generator is known for the labelled images.</p>'
    pivot = sub.pivot_table(index="value", columns="metric", values="srcc", sort=False,
                            dropna=False)
    pivot = pivot[[s for s in dict.fromkeys(sub["metric"])]]
    png = plots.plot_png(lambda fig: plots.draw_bars(fig, pivot))
    table = _group_section(results, info, "generator", ("srcc", "plcc"))
    return (f'<img class="plot" alt="SRCC per generator" src="data:image/png;base64,{png}">\n'
            f'<p class="note">SRCC of each metric on the labelled images of each generator.</p>\n'
            f"<details><summary>Table (SRCC, PLCC per generator)</summary>{table}</details>")


def _hyper_section(results: pd.DataFrame, info: Mapping[str, dict]) -> str:
    groups = [g for g in dict.fromkeys(results.get("group", pd.Series(dtype=str)))
              if g not in ("all", "split", "generator")]
    if not groups:
        return '<p class="note">No hyper-parameter was evaluated.</p>'
    parts = []
    for g in groups:
        parts.append(f"<h3>{html.escape(str(g))}</h3>")
        parts.append(_group_section(results, info, g, ("srcc",)))
    parts.append('<p class="note">SRCC per value (a numeric hyper-parameter with many distinct '
                 "values is binned into quantiles, shown as [min, max]); hover a cell for n.</p>")
    return "\n".join(parts)


def _failures_section(failures: Sequence[Mapping[str, Any]]) -> str:
    if not failures:
        return '<p class="note">No image failed.</p>'
    rows = "".join(
        "<tr>" + "".join(f'<td class="{cls}">{html.escape(str(f.get(k, "")))}</td>'
                         for k, cls in (("name", "l"), ("metric", "l"), ("path", "l mono"),
                                        ("error", "wrap")))
        + "</tr>" for f in failures)
    table = (f'<div class="scroll"><table><tr><th class="l">image</th><th class="l">metric</th>'
             f'<th class="l">path</th><th class="l">error</th></tr>{rows}</table></div>')
    summary = f"{len(failures):,} failed score(s): every one listed, left out of the statistics"
    state = " open" if len(failures) <= 50 else ""
    return f"<details{state}><summary>{html.escape(summary)}</summary>{table}</details>"


# Plots ------------------------------------------------------------------------------------------
def _scatter_section(scores: pd.DataFrame, results: pd.DataFrame, info: Mapping[str, dict],
                     target: str) -> str:
    if target not in scores.columns:
        return f'<p class="note">The scores have no target column {html.escape(target)!s}.</p>'
    truth = pd.to_numeric(scores[target], errors="coerce")
    specs = [s for s in info if s in scores.columns]
    if not specs or truth.notna().sum() == 0:
        return '<p class="note">No labelled, scored image to plot.</p>'
    overall = results[results["group"] == "all"].set_index("metric") if len(results) else None
    panels = []
    for spec in specs:
        pred = pd.to_numeric(scores[spec], errors="coerce")
        keep = (truth.notna() & pred.notna()).to_numpy()
        stats = overall.loc[spec] if overall is not None and spec in overall.index else None
        title = spec if stats is None else (
            f"{spec}\nSRCC {_fmt(stats.get('srcc'))}  PLCC {_fmt(stats.get('plcc'))}")
        xlabel = "prediction" + (" (lower = better)" if info.get(spec, {}).get("lower_better")
                                 else "")
        panels.append(plots.Panel(title, xlabel, pred.to_numpy(float)[keep],
                                  truth.to_numpy(float)[keep]))
    png = plots.plot_png(lambda fig: plots.draw_scatter(fig, panels, target))
    n = int(truth.notna().sum())
    most = plots.MAX_POINTS
    shown = f"a random {most:,} of them are drawn" if n > most else "all drawn"
    return (f'<img class="plot" alt="prediction vs {html.escape(target)}" '
            f'src="data:image/png;base64,{png}">\n'
            f'<p class="note">Each labelled, scored image ({n:,}; {shown}); red: the fitted '
            "logistic mapping from prediction to target.</p>")
