"""AIGIQA-20K (NTIRE 2024 "AIGCQA-30K-Image"), read from its release layout.

Release (ModelScope ``lcysyzxdxc/AIGCQA-30K-Image``)::

    info_train.{csv,xlsx}   name, prompt, mos     14,000 rows (MOS 0-5)
    info_val.{csv,xlsx}     name, prompt          2,000 rows, blind
    info_test.{csv,xlsx}    name, prompt          4,000 rows, blind
    train/ val/ test/       the images (or all images flat in the folder)

Names are ``<Generator>_<NNNN>.png``; the generator is the name up to the last ``_<digits>``.
csv files may come with or without a header row; csv is read when both csv and xlsx exist.
A ``mos`` column in info_val / info_test (ground truth released later) is read too.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.databases.paths import ImageRoot
from aigiqa.databases.registry import register_database
from aigiqa.databases.tables import (
    TABLE_SUFFIXES,
    duplicate_problems,
    find_table,
    number_column,
    raise_problems,
    read_table,
    reject_options,
    text_column,
)
from aigiqa.errors import DatabaseError

#: Name prefix in the release → generator (Li et al., CVPRW 2024, Sec. 3).
GENERATORS: dict[str, str] = {
    "DALLE2": "DALL-E 2",
    "DALLE3": "DALL-E 3",
    "Dream": "Dreamlike",
    "IF": "DeepFloyd IF",
    "LCM_Pixart": "LCM PixArt-alpha",
    "LCM_SD1.5": "LCM Stable Diffusion 1.5",
    "LCM_SDXL": "LCM Stable Diffusion XL",
    "MJ": "Midjourney v5.2",
    "Pixart": "PixArt-alpha",
    "Playground": "Playground v2",
    "SD1.4": "Stable Diffusion 1.4",
    "SD1.5": "Stable Diffusion 1.5",
    "SDXL": "Stable Diffusion XL",
    "SDXL_Turbo": "SDXL Turbo",
    "SSD1B": "Segmind SSD-1B",
}

INFO = DatabaseInfo(
    name="aigiqa20k",
    score_range=(0.0, 5.0),
    target_names=("mos",),
    citation=(
        "C. Li, T. Kou, Y. Gao, Y. Cao, W. Sun, Z. Zhang, Y. Zhou, Z. Zhang, W. Zhang, H. Wu, "
        "X. Liu, X. Min, G. Zhai. AIGIQA-20K: A Large Database for AI-Generated Image Quality "
        "Assessment. CVPR Workshops (NTIRE), 2024. arXiv:2404.03407"
    ),
    url="https://www.modelscope.cn/datasets/lcysyzxdxc/AIGCQA-30K-Image",
    description=(
        "20,000 AI-generated images of 15 text-to-image models; one MOS (0-5) mixing perceptual "
        "quality and text alignment, 21 subjects; train 14,000 / val 2,000 / test 4,000 "
        "(val and test blind in the release)."
    ),
)

SPLITS = ("train", "val", "test")
COLUMNS = ("name", "prompt", "mos")
_NAME = re.compile(r"^(?P<prefix>.+)_\d+(?:\.[A-Za-z0-9]+)?$")


def generator_prefix(name: str) -> str | None:
    """The name up to its last ``_<digits>`` (the longest prefix): 'SDXL_Turbo_0001.png' →
    'SDXL_Turbo'; None when the name has no ``_<digits>`` ending."""
    match = _NAME.match(name)
    return match.group("prefix") if match else None


def read_release_layout(
    root: Path,
    info: DatabaseInfo,
    generators: Mapping[str, str],
    *,
    splits: Sequence[str] = SPLITS,
    follow_symlinks: bool = False,
    blind_ok: bool = False,
) -> Database:
    """Read ``info_<split>.{csv,xlsx}`` (name, prompt[, mos]) for each split, images in
    ``<split>/`` or flat in ``root``.

    ``generators`` maps name prefixes to generator names; a name with an unknown prefix is a
    problem naming file and row. ``mos`` is required for the train split and read where present
    for the others (records without it are blind); with ``blind_ok`` it may be empty or absent
    in every split (a database whose images are not rated yet). Image paths stay inside ``root``
    (``aigiqa.databases.paths``). A file with a header and no rows gives an empty split, with a
    warning. All problems of all files are collected and raised as one DatabaseError.
    """
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise DatabaseError(f"{info.name}: unknown split(s) {unknown}; choose from {SPLITS}")
    root = Path(root)
    inside = ImageRoot(root, follow_symlinks=follow_symlinks)
    target = info.main_target
    problems: list[str] = []
    records: list[Record] = []
    wheres: list[str] = []
    for split in splits:
        stem = f"info_{split}"
        path = find_table(root, stem)
        if path is None:
            suffixes = "/".join(s.lstrip(".") for s in TABLE_SUFFIXES)
            problems.append(f"{root / stem}.{{{suffixes}}}: annotation file not found")
            continue
        needs_target = split == "train" and not blind_ok
        table = read_table(
            path, COLUMNS, required=["name", "prompt", *([target] if needs_target else [])]
        )
        if len(table) == 0:
            warnings.warn(f"{path}: no rows: the {split} split is empty", stacklevel=3)
        names = text_column(table, "name", problems)
        prompts = text_column(table, "prompt", problems)
        labelled = table.has(target)
        mos = number_column(table, target, problems, score_range=info.score_range,
                            required=not blind_ok)
        folder = root / split if (root / split).is_dir() else root
        for i, name in enumerate(names):
            if name is None:
                continue
            where = table.where(i)
            image_path = inside.path(folder, name, where, problems)
            if image_path is None:
                continue
            prefix = generator_prefix(name)
            generator = generators.get(prefix) if prefix is not None else None
            if generator is None:
                known = ", ".join(sorted(generators))
                problems.append(
                    f"{where}: cannot tell the generator of {name!r} "
                    f"(expected <prefix>_<number>, prefix one of {known})"
                )
            value = float(mos[i])
            records.append(
                Record(
                    name=name,
                    path=image_path,
                    prompt=prompts[i],
                    generator=generator,
                    split=split,
                    targets={target: value} if labelled and np.isfinite(value) else {},
                    source=where,
                )
            )
            wheres.append(where)
    problems += duplicate_problems([r.name for r in records], wheres)
    raise_problems(problems, f"{info.name} at {root}")
    return Database(info, records, root)


@register_database("aigiqa20k")
def read_aigiqa20k(
    root: Path, *, splits: Sequence[str] = SPLITS, follow_symlinks: bool = False, **options
) -> Database:
    """AIGIQA-20K from its release folder (see module docstring)."""
    reject_options("aigiqa20k", options)
    return read_release_layout(root, INFO, GENERATORS, splits=splits,
                               follow_symlinks=follow_symlinks)
