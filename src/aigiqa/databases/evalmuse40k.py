"""EvalMuse-40K (Han et al., 2024), read from its Hugging Face release (DY-Evalab/EvalMuse).

Release::

    train_list.json    list of {prompt_id, prompt, type, img_path, total_score: [ratings 1-5],
                       element_score, promt_meaningless, split_confidence, attribute_confidence,
                       fidelity_label}
    test.json          the same items, ratings withheld (blind) until released
    images/ or flat    the images (images.zip), at ``img_path`` = '<model>/<file>'

The target ``alignment`` is the mean of an item's ``total_score`` ratings (1-5); the generator is
the first folder of ``img_path``; hyper: prompt_id and prompt_type (the ``type`` field).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.databases.paths import ImageRoot
from aigiqa.databases.registry import register_database
from aigiqa.databases.tables import duplicate_problems, raise_problems, reject_options
from aigiqa.errors import DatabaseError

INFO = DatabaseInfo(
    name="evalmuse-40k",
    score_range=(1.0, 5.0),
    target_names=("alignment",),
    citation=(
        "S. Han, H. Fan, J. Fu, L. Li, T. Li, J. Cui, Y. Wang, Y. Tai, J. Sun, C. Guo, C. Li. "
        "EvalMuse-40K: A Reliable and Fine-Grained Benchmark with Comprehensive Human "
        "Annotations for Text-to-Image Generation Model Evaluation. arXiv:2412.18150, 2024"
    ),
    url="https://huggingface.co/datasets/DY-Evalab/EvalMuse",
    description="40,000 image-text pairs; overall image-text alignment rated 1-5 by annotators.",
)

FILES = {"train": "train_list.json", "test": "test.json"}
#: JSON field → hyper-parameter name.
HYPER_FIELDS = {"prompt_id": "prompt_id", "type": "prompt_type"}


def _items(path: Path, problems: list[str]) -> list[object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path}: cannot read JSON ({exc})")
        return []
    if not isinstance(data, list):
        problems.append(f"{path}: expected a JSON list of items, got {type(data).__name__}")
        return []
    return data


def _alignment(ratings: object, where: str, blind_ok: bool, problems: list[str]) -> float | None:
    """Mean of the 1-5 ratings; problems for non-numeric, NaN or out-of-range ratings."""
    if ratings is None or ratings == []:
        if not blind_ok:
            problems.append(f"{where}: no 'total_score' ratings")
        return None
    values = ratings if isinstance(ratings, list) else [ratings]
    lo, hi = INFO.score_range
    good = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            problems.append(f"{where}: 'total_score' rating {v!r} is not a finite number")
        elif not lo <= v <= hi:
            problems.append(f"{where}: 'total_score' rating {v:g} is outside [{lo:g}, {hi:g}]")
        else:
            good.append(float(v))
    return sum(good) / len(good) if len(good) == len(values) else None


@register_database("evalmuse-40k")
def read_evalmuse40k(
    root: Path,
    *,
    splits: Sequence[str] = ("train", "test"),
    follow_symlinks: bool = False,
    **options,
) -> Database:
    """EvalMuse-40K: target alignment (mean rating, 1-5); test items blind unless rated."""
    reject_options("evalmuse-40k", options)
    unknown = [s for s in splits if s not in FILES]
    if unknown:
        raise DatabaseError(f"evalmuse-40k: unknown split(s) {unknown}; choose from {list(FILES)}")
    root = Path(root)
    problems: list[str] = []
    records: list[Record] = []
    images = root / "images" if (root / "images").is_dir() else root
    inside = ImageRoot(root, follow_symlinks=follow_symlinks)
    for split in splits:
        path = root / FILES[split]
        if not path.is_file():
            problems.append(f"{path}: annotation file not found")
            continue
        for k, item in enumerate(_items(path, problems), start=1):
            where = f"{path.name} item {k}"
            if not isinstance(item, dict):
                problems.append(f"{where}: expected an object, got {type(item).__name__}")
                continue
            img_path = item.get("img_path")
            prompt = item.get("prompt")
            if not isinstance(img_path, str) or not img_path.strip():
                problems.append(f"{where}: missing 'img_path'")
                continue
            if not isinstance(prompt, str) or not prompt.strip():
                problems.append(f"{where}: missing 'prompt'")
                prompt = None
            rel = PurePosixPath(img_path.strip())
            if len(rel.parts) > 1 and rel.parts[0] == "images":  # path already under images/
                rel, folder = PurePosixPath(*rel.parts[1:]), root / "images"
            else:
                folder = images
            image = inside.path(folder, str(rel), where, problems, what="img_path")
            if image is None:
                continue
            score = _alignment(item.get("total_score"), where, split == "test", problems)
            hyper = {key: item[field] for field, key in HYPER_FIELDS.items()
                     if item.get(field) not in (None, "")}
            records.append(Record(
                name=str(rel),
                path=image,
                prompt=prompt,
                generator=rel.parts[0] if len(rel.parts) > 1 else None,
                split=split,
                targets={"alignment": score} if score is not None else {},
                hyper=hyper,
                source=where,
            ))
    problems += duplicate_problems([r.name for r in records], [r.source for r in records])
    raise_problems(problems, f"{INFO.name} at {root}")
    return Database(INFO, records, root)
