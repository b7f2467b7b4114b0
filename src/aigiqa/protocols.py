"""Evaluation protocols whose numbers compare across papers, and that a model cannot fool.

The official AIGIQA-20K val/test MOS are not public, so a published number comes from some split
of the 14,000 public images; these make the split explicit and hard to game:

``public:7/1/2`` (``public`` alone: 7/1/2)
    One fixed split of the labelled images into train/val/test, stratified by generator, with no
    seed: within each generator the images are ordered by ``sha256("aigiqa-public-v1:" + name)``
    and dealt out as :func:`aigiqa.splits.ratio_split` deals (each generator split in the given
    proportions to within ±1–2 images). The same names give the same parts on every machine and
    version; the README lists the sha256 of each part's sorted name list for AIGIQA-20K, and a
    test checks them.
``logo:GENERATOR``
    Leave one generator out: test on every labelled image of GENERATOR (case-insensitive), train
    on those of the other generators. :func:`logo_sweep` gives one such split per generator
    (``aigiqa splits … --split logo`` shows them all).
``prompt-disjoint:7/1/2`` (``prompt-disjoint`` alone: 7/1/2)
    No prompt in two parts: images are grouped by prompt after folding case and white space
    (an image without a prompt is a group of its own); the groups, in seeded hash order
    (``sha256(f"{seed}:{prompt}")``), are dealt to the part whose image count lags its share the
    most. Part sizes are then within one group's size of their shares.

``cross:DB[:TARGET]``
    Train on one database, test on every image of another, DB, labelled in TARGET (default:
    DB's main target). On the training database the split is ``{"train": every labelled
    image}``; :mod:`aigiqa.training` holds its validation part out of it (``val_fraction``,
    stratified by generator) and tests on DB (:func:`cross_test`).

Each returns ``{part: names}`` of labelled records in database order (as the other splits do).
"""

from __future__ import annotations

import hashlib
import re

from aigiqa.databases.base import Database
from aigiqa.errors import SplitError

PUBLIC_SALT = "aigiqa-public-v1"
DEFAULT_PARTS = "7/1/2"

__all__ = ["PUBLIC_SALT", "cross_test", "logo_split", "logo_sweep", "normalise_prompt",
           "parse_cross", "parse_parts", "prompt_disjoint_split", "public_split",
           "resolve_protocol"]


def parse_parts(text: str, spec: str) -> dict[str, float]:
    """``"7/1/2"`` → ``{"train": 0.7, "val": 0.1, "test": 0.2}`` (``"8/2"`` → train/test)."""
    pieces = [p.strip() for p in text.split("/")]
    try:
        values = [float(p) for p in pieces]
    except ValueError:
        raise SplitError(f"split {spec!r}: parts must be numbers, e.g. 7/1/2 or 8/2") from None
    if len(values) not in (2, 3) or not all(v > 0 and v != float("inf") for v in values):
        raise SplitError(f"split {spec!r}: give 2 (train/test) or 3 (train/val/test) positive "
                         "numbers, e.g. 7/1/2")
    keys = ("train", "test") if len(values) == 2 else ("train", "val", "test")
    total = sum(values)
    return {k: v / total for k, v in zip(keys, values, strict=True)}


def public_split(db: Database, parts: str = DEFAULT_PARTS) -> dict[str, list[str]]:
    """The fixed ``public:PARTS`` split (no seed; see the module docstring)."""
    from aigiqa.splits import ratio_split

    return ratio_split(db, parse_parts(parts, f"public:{parts}"), seed=PUBLIC_SALT)


def _generator_index(db: Database) -> dict[str, str]:
    """Case-folded generator name → the database's spelling; SplitError if there are none."""
    names = sorted({rec.generator for rec in db.labelled() if rec.generator})
    if not names:
        raise SplitError(f"{db.name}: leave-one-generator-out needs generator names, and no "
                         "labelled image has one")
    return {n.casefold(): n for n in names}


def logo_split(db: Database, generator: str) -> dict[str, list[str]]:
    """``{"train": other generators' labelled images, "test": GENERATOR's}``."""
    index = _generator_index(db)
    found = index.get(generator.strip().casefold())
    if found is None:
        raise SplitError(f"{db.name}: no generator {generator!r} for logo:GENERATOR; it has "
                         f"{', '.join(index.values())}")
    labelled = db.labelled()
    unnamed = [rec.name for rec in labelled if not rec.generator]
    if unnamed:
        raise SplitError(f"{db.name}: {len(unnamed)} labelled image(s) have no generator (e.g. "
                         f"{unnamed[0]}); leave-one-generator-out cannot place them")
    return {"train": [rec.name for rec in labelled if rec.generator != found],
            "test": [rec.name for rec in labelled if rec.generator == found]}


def logo_sweep(db: Database) -> dict[str, dict[str, list[str]]]:
    """Every leave-one-generator-out split: generator → ``logo_split(db, generator)``."""
    return {name: logo_split(db, name) for name in _generator_index(db).values()}


def normalise_prompt(prompt: str | None) -> str:
    """The prompt as ``prompt-disjoint`` compares it: case folded, white space collapsed."""
    return " ".join((prompt or "").split()).casefold()


def prompt_disjoint_split(db: Database, parts: str = DEFAULT_PARTS,
                          seed: int = 0) -> dict[str, list[str]]:
    """``prompt-disjoint:PARTS``: no (normalised) prompt in two parts; see the module docstring."""
    shares = parse_parts(parts, f"prompt-disjoint:{parts}")
    groups: dict[str, list[str]] = {}
    for rec in db.labelled():
        prompt = normalise_prompt(rec.prompt)
        groups.setdefault(prompt if prompt else "\0" + rec.name, []).append(rec.name)
    order = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).digest())
    names = list(shares)
    counts = dict.fromkeys(names, 0)
    part_of: dict[str, str] = {}
    dealt = 0
    for group in order:
        dealt += len(groups[group])
        best = max(names, key=lambda p: (shares[p] * dealt - counts[p], -names.index(p)))
        counts[best] += len(groups[group])
        part_of.update(dict.fromkeys(groups[group], best))
    return {p: [rec.name for rec in db.labelled() if part_of[rec.name] == p] for p in names}


_PROTOCOL = re.compile(r"^(public|logo|prompt-disjoint|cross)(?::(.*))?$",
                       re.IGNORECASE | re.DOTALL)


def parse_cross(spec: str) -> tuple[str, str | None] | None:
    """``"cross:agiqa3k:alignment"`` → ``("agiqa3k", "alignment")``, ``"cross:DB"`` → ``(DB,
    None)``; None when ``spec`` is no cross spec; SplitError when it names no database."""
    text = spec.strip()
    if not text.lower().startswith("cross"):
        return None
    pieces = [p.strip() for p in text.split(":")]
    if pieces[0].lower() != "cross":
        return None
    if len(pieces) < 2 or not pieces[1] or len(pieces) > 3 or (len(pieces) == 3
                                                                 and not pieces[2]):
        raise SplitError(f"split {spec!r}: use cross:DB or cross:DB:TARGET (the database to "
                         "test on, e.g. cross:agiqa3k:quality)")
    return pieces[1], (pieces[2] if len(pieces) == 3 else None)


def cross_test(spec: str, test_db: Database) -> tuple[list[str], str]:
    """The test part of ``cross:DB[:TARGET]`` on ``test_db``: (names of every image labelled in
    TARGET, in database order; TARGET, default the main target of ``test_db``)."""
    parsed = parse_cross(spec)
    if parsed is None:
        raise SplitError(f"split {spec!r} is no cross:DB split")
    name, target = parsed
    if name.casefold() != test_db.name.casefold():
        raise SplitError(f"split {spec!r} tests on {name!r}, but the test database given is "
                         f"{test_db.name!r}")
    target = target or test_db.info.main_target
    if target not in test_db.info.target_names:
        raise SplitError(f"split {spec!r}: {test_db.name} has no target {target!r}; it has "
                         f"{', '.join(test_db.info.target_names)}")
    names = [rec.name for rec in test_db.records if target in rec.targets]
    if len(names) < 3:
        raise SplitError(f"split {spec!r}: {test_db.name} has {len(names)} image(s) labelled "
                         f"in {target!r}; at least 3 are needed to test")
    return names, target


def resolve_protocol(db: Database, spec: str, *, seed: int = 0) -> dict[str, list[str]]:
    """The split of a protocol spec: ``public[:PARTS]``, ``logo:GENERATOR``,
    ``prompt-disjoint[:PARTS]`` or ``cross:DB[:TARGET]`` (on the training database: every
    labelled image is ``train``); ``seed`` is used by ``prompt-disjoint`` only."""
    match = _PROTOCOL.match(spec.strip())
    if match is None:
        raise SplitError(f"unknown split {spec!r}")
    kind, arg = match.group(1).lower(), (match.group(2) or "").strip()
    if kind == "public":
        return public_split(db, arg or DEFAULT_PARTS)
    if kind == "prompt-disjoint":
        return prompt_disjoint_split(db, arg or DEFAULT_PARTS, seed)
    if kind == "cross":
        parse_cross(spec)  # names a database, or a SplitError saying how to
        return {"train": [rec.name for rec in db.labelled()]}
    if not arg:
        raise SplitError(f"split {spec!r}: name the generator left out, logo:GENERATOR (one "
                         f"of {', '.join(_generator_index(db).values())}); `aigiqa splits "
                         "--split logo` shows every one")
    return logo_split(db, arg)
