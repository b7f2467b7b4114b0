"""The metrics a server scores with: fixed by its operator at start-up, named by id by clients.

``--metrics 'koniq=effnet-lite0:checkpoint=/srv/k.pt,niqe'`` serves two metrics, ``koniq`` (an
operator label: the part before the first ``=`` has no ``:``) and ``niqe`` (no label: the id is
the metric's name). Every served metric is created and ``prepare``d at start-up, so a missing or
unreadable weight file stops the server before it answers anything. Clients pick among the ids;
they cannot set options, least of all those that name server files (``Metric.file_options``),
and no answer shows such a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fastapi import HTTPException

from aigiqa.errors import AigiqaError, MetricError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.describe import metric_metadata
from aigiqa.metrics.registry import list_metrics, metric_class, metric_from_spec
from aigiqa.serve.config import ServeConfigError
from aigiqa.serve.schemas import MetricInfo

#: What a metric id (a label or a metric name) may look like.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


@dataclass(frozen=True)
class ServedSpec:
    """One entry of ``--metrics``: the public id and the operator's spec."""

    id: str
    spec: str


def parse_served(entries: Iterable[str]) -> list[ServedSpec]:
    """Ids and specs of ``ID=SPEC`` or ``SPEC`` entries; ServeConfigError on a bad or twice-used id.

    Only the syntax is checked here (no metric is created).
    """
    served: list[ServedSpec] = []
    problems: list[str] = []
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        head, sep, rest = entry.partition("=")
        label = bool(sep) and ":" not in head
        spec = rest.strip() if label else entry
        served_id = head.strip() if label else spec.split(":", 1)[0].strip()
        if not ID_PATTERN.fullmatch(served_id):
            problems.append(f"{entry!r}: id {served_id!r} must be letters, digits, '_', '.' or "
                            "'-' (at most 64, not starting with a sign)")
        elif not spec:
            problems.append(f"{entry!r}: no metric spec after {served_id}=")
        served.append(ServedSpec(served_id, spec))
    counts: dict[str, int] = {}
    for item in served:
        counts[item.id] = counts.get(item.id, 0) + 1
    problems += [f"id {i!r} is used by {n} entries of --metrics; give each a label, "
                 f"e.g. '{i}2={next(s.spec for s in served if s.id == i)}'"
                 for i, n in counts.items() if n > 1]
    if problems:
        raise ServeConfigError("invalid --metrics", problems)
    return served


def load_served(entries: Iterable[str], allow_names: bool = False) -> dict[str, Metric]:
    """Create and ``prepare`` every served metric, by id.

    ServeConfigError (one line) naming the entry and why it cannot be served: unknown metric, bad
    option, missing or unreadable file, or a metric that reads names without ``allow_names``.
    """
    metrics: dict[str, Metric] = {}
    for item in parse_served(entries):
        try:
            metric = metric_from_spec(item.spec)
            if metric.reads_names and not allow_names:
                raise MetricError("it reads file names or generator ids, which the service "
                                  "passes only with --allow-names (then each image of a "
                                  "request gives its 'generator')")
            metric.prepare()
        except AigiqaError as exc:
            reason = " ".join(str(exc).split())
            raise ServeConfigError(f"--metrics: {item.spec!r} cannot be served: {reason}") from exc
        except Exception as exc:  # a loader that raises something else on a corrupt file
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise ServeConfigError(f"--metrics: {item.spec!r} cannot be served: {reason}") from exc
        metrics[item.id] = metric
    return metrics


def _known_class(name: str) -> type[Metric] | None:
    return metric_class(name) if name in list_metrics() else None


def resolve_ids(requested: list[str], served: Mapping[str, Metric]) -> list[str]:
    """The served ids a client asked for; 422 for anything else.

    The answer lists the served ids and never echoes an option value; a name is echoed only if it
    looks like an id.
    """
    ids = ", ".join(served)
    for text in requested:
        name, sep, rest = (part.strip() for part in text.partition(":"))
        shown = f"metric {name!r}" if ID_PATTERN.fullmatch(name) else "the metric given"
        if sep:
            cls = type(served[name]) if name in served else _known_class(name)
            keys = [p.partition("=")[0].strip() for p in rest.split(":")]
            files = sorted({k for k in keys if cls is not None and (
                k in cls.file_options or cls.deprecated_options.get(k) in cls.file_options)})
            detail = (f"{shown}: option(s) {', '.join(files)} name files on the server; "
                      "clients cannot set them. " if files else
                      f"{shown}: options cannot be set by a client. ")
            raise HTTPException(422, detail + "Options are fixed by the operator; name a served "
                                f"metric by its id alone: {ids} (GET /v1/metrics)")
        if name not in served:
            raise HTTPException(422, f"{shown} is not served here; served metrics: "
                                f"{ids} (GET /v1/metrics)")
    return requested


def metric_info(served_id: str, metric: Metric) -> MetricInfo:
    """Public description of a served metric: metadata and option values, file-valued ones named
    without their value."""
    info = metric_metadata(metric)
    files = [k for k in info["file_options"] if k in metric.options]
    info.update(id=served_id, file_options=files,
                options={k: v for k, v in info["options"].items() if k not in files})
    return MetricInfo(**{field: info[field] for field in MetricInfo.model_fields})
