"""The report of a preference bench: report.html from results.json and groups.csv.

``report.build_report`` hands a results folder whose ``meta["evaluation"]`` is pairwise accuracy
to :func:`build_preference_report`. The page states the rule (how it averages and treats ties),
where the comparisons came from, the accuracy of each metric with its bootstrap CI over groups,
and the per-group breakdown; it shares the template, the formatting and the failures section
of the MOS report.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from string import Template

import pandas as pd

from aigiqa.benchmark import provenance, report
from aigiqa.benchmark.preference_run import GROUPS
from aigiqa.errors import AigiqaError
from aigiqa.files import write_text

MAX_GROUP_ROWS = 1000
"""The per-group table of the page shows this many groups at most (groups.csv has them all)."""


def build_preference_report(out: Path, meta: dict, results: pd.DataFrame) -> Path:
    """Write ``out/report.html`` of a preference bench; its path."""
    path = Path(out) / GROUPS
    if not path.is_file():
        raise report.ReportError(f"{path}: missing; the report of a preference bench needs the "
                                 f"per-group breakdown written by `aigiqa bench`")
    try:
        groups = pd.read_csv(path, dtype={"group": str}, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise report.ReportError(f"{path}: not a readable groups file ({exc})") from None
    missing = [c for c in ("metric", "group", "n_pairs", "accuracy") if c not in groups.columns]
    if missing:
        raise report.ReportError(f"{path}: missing column(s) {missing}")
    page = render_preference_html(meta, results, groups)
    target = Path(out) / report.REPORT
    try:
        write_text(target, page, f"the results file {report.REPORT}")
    except AigiqaError as exc:
        raise report.ReportError(str(exc)) from exc
    return target


def render_preference_html(meta: dict, results: pd.DataFrame, groups: pd.DataFrame) -> str:
    """The page as one HTML string (the MOS report's template and styles)."""
    info = report._metric_info(meta, results)
    sections = [
        ("summary", "Pairwise accuracy", _summary_section(meta, results, info)),
        ("protocols", "Protocols", provenance.section(meta, info)),
        ("groups", "Per group", _groups_section(groups, info)),
        ("failures", "Failures", report._failures_section(meta.get("failures") or [])),
    ]
    nav = "".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title, _ in sections)
    body = [_header(meta), f"<nav>{nav}</nav>"]
    body += [f'<h2 id="{key}">{html.escape(title)}</h2>\n{content}'
             for key, title, content in sections]
    template = Template(Path(report.__file__).with_name(report.REPORT).read_text("utf-8"))
    return template.substitute(
        title=html.escape(f"aigiqa benchmark {report._DASH} {meta.get('database', '')}"),
        version=html.escape(str(meta.get("aigiqa_version", ""))),
        body="\n".join(body),
    )


def _header(meta: dict) -> str:
    fields = [
        ("database", meta.get("database")),
        ("root", meta.get("root")),
        ("evaluation", f"pairwise accuracy, rule {meta.get('rule')}"),
        ("rule", f"{meta.get('average')}; ties: {meta.get('ties')}"),
        ("comparisons", f"{meta.get('n_comparisons', 0):,} in {meta.get('n_groups', 0):,} "
                        f"groups: {meta.get('comparisons')}"),
        ("metrics", len(meta.get("metrics") or [])),
        ("scores", f"{meta.get('computed', report._DASH)} computed, "
                   f"{meta.get('cached', report._DASH)} cached, "
                   f"{len(meta.get('failures') or [])} failed"),
        ("bootstrap", f"{meta.get('bootstrap', 0):,} resamples of the groups"),
        ("created", meta.get("created")),
        ("aigiqa", meta.get("aigiqa_version")),
    ]
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>"
                   for k, v in fields if v not in (None, ""))
    title = html.escape(f"Benchmark: {meta.get('database', 'unknown database')}")
    return f"<h1>{title}</h1>\n<dl class=\"meta\">{rows}</dl>"


def _summary_section(meta: dict, results: pd.DataFrame, info: Mapping[str, dict]) -> str:
    if not len(results):
        return '<p class="note">No results.</p>'
    rows = results.set_index("metric")
    best = report._best(rows["accuracy"], True)
    out = ['<div class="scroll"><table><tr><th class="l">metric</th><th class="l">kind</th>'
           "<th>images</th><th>failed</th><th>groups</th><th>pairs</th><th>left out</th>"
           "<th>accuracy</th></tr>"]
    for spec, row in rows.iterrows():
        kind = html.escape(str(info.get(spec, {}).get("kind") or ""))
        text = report._fmt(row.get("accuracy"))
        lo, hi = report._fmt(row.get("accuracy_ci_low")), report._fmt(row.get("accuracy_ci_high"))
        if report._DASH not in (lo, hi):
            text += f" <small>[{lo}, {hi}]</small>"
        counts = "".join(f"<td>{int(row[c]):,}</td>" for c in
                         ("n", "n_failed", "n_groups", "n_pairs", "n_left_out"))
        out.append(f'<tr><td class="l">{report._metric_label(spec, info)}</td>'
                   f'<td class="l">{kind}</td>{counts}{report._cell(text, spec in best)}</tr>')
    out.append("</table></div>")
    out.append(f'<p class="note">Rule <b>{html.escape(str(meta.get("rule")))}</b>: '
               f"{html.escape(str(meta.get('average')))}; ties: "
               f"{html.escape(str(meta.get('ties')))}. Brackets: 95% bootstrap confidence "
               "interval, groups (prompts) resampled. pairs: the pairs the rule counts; left "
               "out: comparisons with an image the metric failed to score. Bold: best. "
               "\u2193: lower score means better quality (its sign is flipped first).</p>")
    return "\n".join(out)


def _groups_section(groups: pd.DataFrame, info: Mapping[str, dict]) -> str:
    if not len(groups):
        return '<p class="note">No group was evaluated.</p>'
    acc = pd.to_numeric(groups["accuracy"], errors="coerce")
    stats = groups.assign(accuracy=acc).groupby("metric", sort=False)["accuracy"]
    out = ['<div class="scroll"><table><tr><th class="l">metric</th><th>groups</th>'
           "<th>median</th><th>all right</th><th>below 0.5</th></tr>"]
    for spec, values in stats:
        values = values.dropna()
        out.append(f'<tr><td class="l">{report._metric_label(str(spec), info)}</td>'
                   f"<td>{len(values):,}</td><td>{report._fmt(values.median())}</td>"
                   f"<td>{int((values == 1).sum()):,}</td><td>{int((values < 0.5).sum()):,}"
                   "</td></tr>")
    out.append("</table></div>")
    pivot = groups.assign(accuracy=acc).pivot_table(index="group", columns="metric",
                                                    values="accuracy", sort=False, dropna=False)
    pivot = pivot[list(dict.fromkeys(groups["metric"]))]
    shown = pivot.iloc[:MAX_GROUP_ROWS]
    head = "".join(f"<th>{report._metric_label(str(s), info)}</th>" for s in shown.columns)
    body = "".join(f'<tr><td class="l">{html.escape(str(g))}</td>'
                   + "".join(f"<td>{report._fmt(v)}</td>" for v in row) + "</tr>"
                   for g, row in shown.iterrows())
    more = (f" (the first {MAX_GROUP_ROWS:,} of {len(pivot):,})" if len(pivot) > MAX_GROUP_ROWS
            else "")
    out.append(f"<details><summary>Accuracy per group{more}</summary><div class=\"scroll\">"
               f'<table><tr><th class="l">group</th>{head}</tr>{body}</table></div></details>')
    out.append(f'<p class="note">Each group\'s accuracy under the same rule (a dash: no pair '
               f"the rule counts); every group and its counts are in {GROUPS}.</p>")
    return "\n".join(out)
