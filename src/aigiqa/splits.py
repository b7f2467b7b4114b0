"""Train/test splits of a database: the official one, seeded k-fold and ratio splits, and the
protocols of :mod:`aigiqa.protocols` (``public``, ``logo``, ``prompt-disjoint``, ``cross``).

Every split holds labelled records only: blind records (no main target, e.g. the AIGIQA-20K
val/test releases) never enter an evaluation. Lists of names keep the database's record order.

Random splits are stratified by generator and deterministic without a random number generator:
within each generator, images are ordered by ``sha256(f"{seed}:{name}")`` (the same order on every
run, platform and numpy version, and independent of the record order); the generators (sorted by
name) are then concatenated and the sequence is dealt out:

- k folds: image i of the sequence goes to test fold ``i % k``. Each generator's images are spread
  over the folds as evenly as possible (counts differ by at most one), fold sizes differ by at most
  one, and every labelled image is in exactly one test fold. A generator with fewer than k images
  (even one) simply lands in fewer test folds; it is in the training part of the others.
- ratios: each image goes to the split whose count lags its share the most (largest
  ``ratio * position - count``, ties to the first split). Every prefix of the sequence, hence every
  generator, is split in the given proportions to within ±1–2 images; overall counts are within
  one image of ``ratio * n``. A small generator may be absent from a small split.
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from collections.abc import Mapping

from aigiqa.databases.base import Database
from aigiqa.errors import SplitError

DEFAULT_RATIOS = {"train": 0.7, "val": 0.1, "test": 0.2}
DEFAULT_FOLDS = 5
SPEC_HELP = ("'official', 'fold:K' (K-th of 5 folds, from 0), 'fold:K/N', 'ratio:0.7,0.1,0.2', "
             "'public:7/1/2', 'logo:GENERATOR', 'prompt-disjoint:7/1/2' or 'cross:DB[:TARGET]'")
#: The ``--split`` help of the commands.
SPLIT_OPTION_HELP = ("official | fold:K[/N] | ratio:a,b[,c] | public[:7/1/2] | logo:GENERATOR | "
                     "prompt-disjoint[:7/1/2] | cross:DB[:TARGET] (train here, test on DB)")
#: How every split spec starts (the protocol names of :func:`resolve_split`).
SPEC_PREFIXES = ("official", "fold:", "ratio:", "public", "logo", "prompt-disjoint", "cross")

__all__ = ["DEFAULT_RATIOS", "is_split_spec", "kfold_splits", "official_split", "ratio_split",
           "resolve_split", "training_records"]


def official_split(db: Database) -> dict[str, list[str]]:
    """The database's own split: split name → names of its labelled records (blind ones dropped).

    A split with no labelled record (e.g. AIGIQA-20K val and test) is absent.
    """
    out: dict[str, list[str]] = {}
    for rec in db.labelled():
        out.setdefault(rec.split, []).append(rec.name)
    return out


def _sequence(db: Database, seed: int | str) -> list[str]:
    """Labelled names grouped by generator (sorted), each group in seeded hash order."""
    groups: dict[str, list[str]] = {}
    for rec in db.labelled():
        groups.setdefault(rec.generator or "", []).append(rec.name)
    seq: list[str] = []
    for generator in sorted(groups):
        seq += sorted(groups[generator],
                      key=lambda name: hashlib.sha256(f"{seed}:{name}".encode()).digest())
    return seq


def _in_db_order(db: Database, names: set[str]) -> list[str]:
    return [rec.name for rec in db.records if rec.name in names]


def kfold_splits(db: Database, k: int = DEFAULT_FOLDS, seed: int = 0) -> list[dict[str, list[str]]]:
    """k folds stratified by generator: a list of k ``{"train": names, "test": names}``.

    Every labelled image is in exactly one test fold; see the module docstring for the dealing.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        raise SplitError(f"{db.name}: number of folds must be an integer >= 2, got {k!r}")
    seq = _sequence(db, seed)
    if len(seq) < k:
        raise SplitError(f"{db.name}: {k} folds need at least {k} labelled images, "
                         f"found {len(seq)}")
    fold_of = {name: i % k for i, name in enumerate(seq)}
    labelled = [name for name in (rec.name for rec in db.records) if name in fold_of]
    return [
        {"train": [n for n in labelled if fold_of[n] != f],
         "test": [n for n in labelled if fold_of[n] == f]}
        for f in range(k)
    ]


def ratio_split(db: Database, ratios: Mapping[str, float] | None = None,
                seed: int | str = 0) -> dict[str, list[str]]:
    """Split the labelled images by ratios (summing to 1), stratified by generator.

    ratios: split name → fraction, e.g. ``{"train": 0.7, "val": 0.1, "test": 0.2}`` (default).
    Returns split name → names, in the order of ``ratios``.
    """
    ratios = dict(DEFAULT_RATIOS if ratios is None else ratios)
    _check_ratios(db, ratios)
    names = list(ratios)
    shares = [float(ratios[s]) for s in names]
    counts = [0] * len(names)
    split_of: dict[str, int] = {}
    for t, name in enumerate(_sequence(db, seed), start=1):
        lag = [share * t - count for share, count in zip(shares, counts, strict=True)]
        best = max(range(len(names)), key=lambda s: (lag[s], -s))
        counts[best] += 1
        split_of[name] = best
    return {
        split: _in_db_order(db, {n for n, s in split_of.items() if s == i})
        for i, split in enumerate(names)
    }


def _check_ratios(db: Database, ratios: dict[str, float]) -> None:
    if not ratios:
        raise SplitError(f"{db.name}: no split ratios given")
    bad = [f"{k}={v!r}" for k, v in ratios.items()
           if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0]
    if bad:
        raise SplitError(f"{db.name}: split ratios must be positive numbers: {', '.join(bad)}")
    total = sum(ratios.values())
    if abs(total - 1) > 1e-6:
        raise SplitError(f"{db.name}: split ratios must sum to 1, got {total:g} "
                         f"({', '.join(f'{k}={v:g}' for k, v in ratios.items())})")


def resolve_split(db: Database, spec: str, *, seed: int = 0) -> dict[str, list[str]]:
    """A split from its command-line form: split name → names of labelled records.

    ``official`` → :func:`official_split`; ``fold:K`` → fold K (0-based) of 5, ``fold:K/N`` of N
    (``{"train", "test"}``); ``ratio:0.7,0.1,0.2`` → train/val/test (``ratio:0.8,0.2`` →
    train/test). Seeded by ``seed``. ``public[:7/1/2]``, ``logo:GENERATOR``,
    ``prompt-disjoint[:7/1/2]`` and ``cross:DB[:TARGET]``:
    :func:`aigiqa.protocols.resolve_protocol`.
    """
    text = spec.strip().lower()
    if text == "official":
        return official_split(db)
    fold = re.fullmatch(r"fold:(\d+)(?:/(\d+))?", text)
    if fold:
        index = int(fold.group(1))
        k = int(fold.group(2)) if fold.group(2) else DEFAULT_FOLDS
        if k < 2 or index >= k:
            raise SplitError(f"split {spec!r}: fold index must be in 0..{k - 1} "
                             f"and the number of folds >= 2")
        return kfold_splits(db, k, seed)[index]
    if text.startswith("ratio:"):
        parts = [p.strip() for p in text[len("ratio:"):].split(",")]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise SplitError(f"split {spec!r}: ratios must be numbers, e.g. ratio:0.7,0.1,0.2") \
                from None
        if len(values) not in (2, 3):
            raise SplitError(f"split {spec!r}: give 2 (train,test) or 3 (train,val,test) ratios")
        keys = ("train", "test") if len(values) == 2 else ("train", "val", "test")
        return ratio_split(db, dict(zip(keys, values, strict=True)), seed)
    if text.startswith(("public", "logo", "prompt-disjoint", "cross")):
        from aigiqa import protocols

        return protocols.resolve_protocol(db, spec.strip(), seed=seed)
    raise SplitError(f"unknown split {spec!r}: use {SPEC_HELP}")


def is_split_spec(text: str) -> bool:
    """Whether ``text`` is a split spec (not a split name of a database such as ``train``)."""
    return text.strip().lower().startswith(SPEC_PREFIXES)


def training_records(db: Database, split: str = "official", *, seed: int = 0,
                     metric: str = "metric") -> list:
    """The labelled records a metric is fitted on: the ``train`` part of the split ``split``
    (a spec, as :func:`resolve_split` reads it), in record order.

    The protocol of every trainable metric's ``fit(database, split=SPEC)``. A split *name* of
    the database that is not a spec (``"train"``: the old way of ``Brisque.fit``) still works,
    with a DeprecationWarning: it is that part of the official split.
    """
    if not is_split_spec(split) and split in db.splits:
        warnings.warn(f"metric {metric!r}: fit(split={split!r}) names a split of the database; "
                      f"fit takes a split spec now ({SPEC_HELP}): use split='official' to fit "
                      f"on its {split!r} part", DeprecationWarning, stacklevel=3)
        names = official_split(db).get(split, [])
    else:
        parts = resolve_split(db, split, seed=seed)
        if "train" not in parts:
            raise SplitError(f"metric {metric!r}: split {split!r} of {db.name} has no train part "
                             f"(parts: {', '.join(parts) or 'none'})")
        names = parts["train"]
    return [db.record(n) for n in names]
