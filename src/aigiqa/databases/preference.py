"""Preference databases: images in groups (one prompt each) with human paired comparisons.

A :class:`PreferenceDatabase` is a :class:`~aigiqa.databases.base.Database` (records: the
images, blind: no MOS) plus :meth:`~PreferenceDatabase.comparisons`, the judgements as a
comparisons table (:mod:`aigiqa.comparisons`). Each record's ``hyper["group"]`` is its group.
``accuracy_rule`` names the pairwise-accuracy rule of the database's own benchmark (the one
``aigiqa bench`` uses unless told otherwise): ``imagereward``, ``hpsv2`` or ``pickscore``.

Readers here take the JSON ranking releases:

``imagereward-test``  ImageReward (Xu et al., NeurIPS 2023) ``test.json``: a list of
    ``{id, prompt, generations: [paths], ranking: [ranks]}``; rank 1 is best, equal ranks are
    ties. Images at ``generations`` paths under ``images/`` or the folder itself.
``hpdv2``  HPD v2 (Wu et al., 2023) ``test.json``: ``{prompt, image_path: [files], rank: [...],
    raw_annotations: [[...] per annotator], user_hash: [...]}``; lower rank is better; images in
    ``test/`` or the folder itself; ``annotations="rank"`` (the consensus, as HPS v2's evaluation
    uses) or ``"raw"`` (one set of comparisons per annotator, ``annotator`` = its ``user_hash``).

Every pair of a group's images is a comparison (list order: a is the earlier image). A group
with fewer than two images, a ranking whose length differs from its image list, a rank that is
not a finite number and an image listed twice are errors naming the file and item.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from aigiqa.comparisons import check_comparisons, comparisons_frame, ranking_pairs
from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.databases.paths import ImageRoot
from aigiqa.databases.registry import register_database
from aigiqa.databases.tables import pick_folder, raise_problems, reject_options
from aigiqa.errors import DatabaseError


class PreferenceDatabase(Database):
    """A Database whose ground truth is paired comparisons within groups (see module doc)."""

    def __init__(self, info: DatabaseInfo, records: Sequence[Record], root: str | Path,
                 comparisons: pd.DataFrame, *, accuracy_rule: str = "imagereward") -> None:
        super().__init__(info, records, root)
        self._comparisons = check_comparisons(comparisons, info.name, known=set(self._index))
        #: The rule of :func:`~aigiqa.evaluation.pairwise_accuracy` its own benchmark uses.
        self.accuracy_rule = accuracy_rule

    def comparisons(self) -> pd.DataFrame:
        """The judgements: columns group, a, b, outcome ("a" | "b" | "tie"), annotator, source."""
        return self._comparisons.copy()

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(self._comparisons["group"]))

    def subset(self, names: Sequence[str] | None = None, *,
               split: str | None = None) -> PreferenceDatabase:
        """The named records (or one split) and the comparisons between them."""
        base = super().subset(names, split=split)
        keep = set(base._index)
        comp = self._comparisons
        comp = comp[comp["a"].isin(keep) & comp["b"].isin(keep)]
        return PreferenceDatabase(self.info, base.records, self.root, comp,
                                  accuracy_rule=self.accuracy_rule)

    def __repr__(self) -> str:
        return (f"PreferenceDatabase({self.info.name!r}, {len(self)} images, "
                f"{len(self.groups)} groups, {len(self._comparisons)} comparisons)")


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _json_list(path: Path) -> list[object]:
    if not path.is_file():
        raise DatabaseError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatabaseError(f"{path}: cannot read JSON ({exc})") from None
    if not isinstance(data, list):
        raise DatabaseError(f"{path}: expected a JSON list of items, got {type(data).__name__}")
    return data


def _group_images(item: dict, where: str, names_key: str, ranks_key: str,
                  problems: list[str]) -> tuple[list[str], list[float]] | None:
    """The image names and their ranks of one item, or None after adding its problems."""
    names, ranks = item.get(names_key), item.get(ranks_key)
    bad = len(problems)
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        problems.append(f"{where}: {names_key!r} must be a list of image paths")
        return None
    if len(names) < 2:
        problems.append(f"{where}: a group needs at least two images, {names_key!r} has "
                        f"{len(names)}")
    if not isinstance(ranks, list):
        problems.append(f"{where}: {ranks_key!r} must be a list of ranks")
        return None
    if len(ranks) != len(names):
        problems.append(f"{where}: {ranks_key!r} has {len(ranks)} entries for {len(names)} "
                        f"images (a rank names an image by its position)")
    for k, r in enumerate(ranks):
        if not _finite(r):
            problems.append(f"{where}: {ranks_key}[{k}] = {r!r} is not a finite number")
    seen: set[str] = set()
    for n in names:
        if n in seen:
            problems.append(f"{where}: image {n!r} is listed twice in the group")
        seen.add(n)
    return (names, [float(r) for r in ranks]) if len(problems) == bad else None


def _read_ranked(root: Path, file: str, name: str, info: DatabaseInfo, folders: Sequence[str],
                 names_key: str, ranks_key: str, id_key: str | None, follow_symlinks: bool,
                 rule: str, raw: bool = False) -> PreferenceDatabase:
    path = root / file
    items = _json_list(path)
    images = pick_folder(root, folders)
    inside = ImageRoot(root, follow_symlinks=follow_symlinks)
    problems: list[str] = []
    records: list[Record] = []
    rows: list[dict] = []
    groups: dict[str, str] = {}
    for k, item in enumerate(items, start=1):
        where = f"{path.name} item {k}"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected an object, got {type(item).__name__}")
            continue
        group = str(item.get(id_key)) if id_key and item.get(id_key) is not None else str(k)
        if group in groups:
            problems.append(f"{where}: duplicate group id {group!r} (first at {groups[group]})")
            continue
        groups[group] = where
        got = _group_images(item, where, names_key, ranks_key, problems)
        if got is None:
            continue
        names, ranks = got
        prompt = item.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            problems.append(f"{where}: missing 'prompt'")
            continue
        paths = [inside.path(images, n, where, problems, what=names_key) for n in names]
        if any(p is None for p in paths):
            continue
        records += [Record(name=n, path=p, prompt=prompt, hyper={"group": group}, source=where)
                    for n, p in zip(names, paths, strict=True)]
        if not raw:
            rows += ranking_pairs(group, names, ranks, source=where)
            continue
        annotations, users = item.get("raw_annotations"), item.get("user_hash") or []
        if not isinstance(annotations, list) or not annotations:
            problems.append(f"{where}: no 'raw_annotations' (annotations='raw')")
            continue
        for u, ann in enumerate(annotations):
            got = _group_images({"n": names, "r": ann}, f"{where} raw_annotations[{u}]",
                                "n", "r", problems)
            if got is not None:
                who = str(users[u]) if u < len(users) else str(u)
                rows += ranking_pairs(group, names, got[1], annotator=who,
                                      source=f"{where} raw_annotations[{u}]")
    raise_problems(problems, f"{name} at {root}")
    return PreferenceDatabase(info, records, root, comparisons_frame(rows), accuracy_rule=rule)


IMAGEREWARD = DatabaseInfo(
    name="imagereward-test",
    score_range=(0.0, 1.0),
    target_names=("preference",),
    citation=("J. Xu, X. Liu, Y. Wu, Y. Tong, Q. Li, M. Ding, J. Tang, Y. Dong. ImageReward: "
              "Learning and Evaluating Human Preferences for Text-to-Image Generation. "
              "NeurIPS 2023"),
    url="https://github.com/THUDM/ImageReward",
    description="466 prompts x 4-9 images ranked by annotators (ties allowed); the test set.",
)

HPDV2 = DatabaseInfo(
    name="hpdv2",
    score_range=(0.0, 1.0),
    target_names=("preference",),
    citation=("X. Wu, Y. Hao, K. Sun, Y. Chen, F. Zhu, R. Zhao, H. Li. Human Preference Score v2: "
              "A Solid Benchmark for Evaluating Human Preferences of Text-to-Image Synthesis. "
              "arXiv:2306.09341, 2023"),
    url="https://huggingface.co/datasets/ymhao/HPDv2",
    description="HPD v2 test set: prompts with several images ranked by annotators.",
)


@register_database("imagereward-test")
def read_imagereward_test(root: Path, *, file: str = "test.json", follow_symlinks: bool = False,
                          **options) -> PreferenceDatabase:
    """ImageReward's test set: groups of images ranked within each prompt (ties allowed)."""
    reject_options("imagereward-test", options)
    return _read_ranked(Path(root), file, "imagereward-test", IMAGEREWARD, ("images", ""),
                        "generations", "ranking", "id", follow_symlinks, "imagereward")


@register_database("hpdv2")
def read_hpdv2(root: Path, *, file: str = "test.json", annotations: str = "rank",
               follow_symlinks: bool = False, **options) -> PreferenceDatabase:
    """HPD v2's test set; ``annotations`` = "rank" (consensus) or "raw" (per annotator)."""
    reject_options("hpdv2", options)
    if annotations not in ("rank", "raw"):
        raise DatabaseError(f"hpdv2: annotations={annotations!r}; choose 'rank' or 'raw'")
    return _read_ranked(Path(root), file, "hpdv2", HPDV2, ("test", ""), "image_path", "rank",
                        None, follow_symlinks, "hpsv2", raw=annotations == "raw")
