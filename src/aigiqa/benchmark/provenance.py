"""Which protocol and mode produced each benchmark number: columns of the results table and a
section of the report.

A benchmark scores every image of one database; what a number means depends on the weights:

``protocol``
    ``not trained here`` (released or default weights), or ``trained on DB SPLIT`` for a
    checkpoint written by ``aigiqa train`` (its metadata holds the protocol, see
    :mod:`aigiqa.training.protocol`), with ``includes its training images`` when the benchmark
    database is the one it was trained on (the ``all`` row then mixes train and test parts).
``name_blind``
    True unless the checkpoint was trained with file names or generator ids allowed, or the
    metric reads them when scoring (``reads_names``: only scored with ``aigiqa bench
    --allow-names``, which passes them); other metrics are given decoded pixels and prompts.
    (Results written by an aigiqa that did not record these say ``not recorded`` and None.)
``inference_protocol``
    The learned metric's inference protocol (e.g. MANIQA ``crops`` or ``resize``), "" if it has
    one only.

An ensemble (its provenance lists ``members``) has its members' distinct protocols joined by
``;``, is name-blind only if every member is, and has their inference protocols joined by ``+``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import pandas as pd

COLUMNS = ("protocol", "name_blind", "inference_protocol")

__all__ = ["COLUMNS", "annotate", "describe", "section"]


def describe(info: Mapping, database: str, root: str | None = None) -> dict[str, object]:
    """The :data:`COLUMNS` of one metric from its metadata (``metric_metadata``'s dict), for a
    benchmark of ``database`` (at ``root``: the same database at another folder, e.g. another
    demo, holds other images)."""
    if not isinstance(info.get("provenance"), Mapping):  # results of an older aigiqa
        return {"protocol": "not recorded", "name_blind": None, "inference_protocol": ""}
    prov = info["provenance"]
    if isinstance(prov.get("members"), Sequence) and prov["members"]:  # an ensemble: its members'
        parts = [describe({"provenance": m}, database, root) for m in prov["members"]
                 if isinstance(m, Mapping)]
        return {"protocol": "; ".join(dict.fromkeys(str(p["protocol"]) for p in parts)),
                "name_blind": not prov.get("reads_names") and all(
                    p["name_blind"] for p in parts),
                "inference_protocol": " + ".join(str(p["inference_protocol"]) or "-"
                                                 for p in parts)}
    training = prov.get("training")
    if isinstance(training, Mapping):
        part = training.get("train") or {}
        train_db, train_root = str(part.get("database", "")), part.get("root")
        text = f"trained on {train_db} {training.get('split', '')}".strip()
        if train_db and train_db.casefold() == str(database).casefold() and (
                root is None or train_root is None or str(train_root) == str(root)):
            text += "; includes its training images"
        blind = bool(training.get("name_blind", True))
    else:
        text, blind = "not trained here", True
    if prov.get("reads_names"):
        blind = False
    return {"protocol": text, "name_blind": blind,
            "inference_protocol": str(prov.get("inference_protocol") or "")}


def annotate(results: pd.DataFrame, metrics: Sequence[Mapping], database: str,
             root: str | None = None) -> pd.DataFrame:
    """``results`` with the :data:`COLUMNS` filled per metric (matched by ``spec``)."""
    by_spec = {str(m.get("spec", m.get("name"))): describe(m, database, root) for m in metrics}
    out = results.copy()
    for column in COLUMNS:
        out[column] = [by_spec.get(str(spec), describe({}, database))[column]
                       for spec in out["metric"]] if len(out) else pd.Series(dtype=object)
    return out


def _yes_no(value: object) -> str:
    return "not recorded" if value is None else ("yes" if value else "no")


def section(meta: Mapping, metrics: Mapping[str, dict]) -> str:
    """The report's table: metric, how it was trained, name-blind, inference protocol."""
    database, root = str(meta.get("database", "")), meta.get("root")
    rows = []
    for spec, info in metrics.items():
        found = describe(info, database, None if root is None else str(root))
        rows.append(f'<tr><td class="l">{html.escape(spec)}</td>'
                    f'<td class="l">{html.escape(str(found["protocol"]))}</td>'
                    f'<td class="l">{_yes_no(found["name_blind"])}</td>'
                    f'<td class="l">{html.escape(str(found["inference_protocol"]) or "-")}</td>'
                    "</tr>")
    if not rows:
        return '<p class="note">No metrics.</p>'
    return ('<div class="scroll"><table><tr><th class="l">metric</th><th class="l">protocol'
            '</th><th class="l">name-blind</th><th class="l">inference</th></tr>'
            + "".join(rows) + "</table></div>\n"
            '<p class="note">Every number of this report comes from scoring all images of '
            f"{html.escape(database)} with the weights named here. Protocol: how the weights were "
            "trained (aigiqa train records it in the checkpoint; weights trained elsewhere: not "
            "trained here). Name-blind: the model saw pixels and prompts only, no file names or "
            "generator ids (scoring passes them only to a metric that reads them, with "
            "--allow-names). Inference: the metric's inference "
            "protocol (its option protocol=).</p>")
