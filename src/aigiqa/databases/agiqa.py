"""AGIQA-3K and AGIQA-1K (Shanghai Jiao Tong University), read from their GitHub releases.

AGIQA-3K (github lcysyzxdxc/AGIQA-3k-Database)::

    data.csv     name, prompt, adj1, adj2, style, mos_quality, std_quality, mos_align, std_align
    AGIQA-3K/    the images (AGIQA-3K.zip), or flat next to data.csv

Names are ``<model>_<variant>_<prompt index>.jpg``: model AttnGAN, DALLE2, glide, midjourney,
sd1.5 or xl2.2; variant ``normal`` (default settings), ``lowstep`` (fewer iterations),
``lowcorr`` / ``highcorr`` (lower / higher classifier-free guidance).

AGIQA-1K (github lcysyzxdxc/AGIQA-1k-Database)::

    AIGC_MOS_Zscore.xlsx   Image, Prompt, MOS (z-scored and rescaled to 0-5): the MOS file
    AIGC_all.csv           Image, Score: raw mean ratings, not read
    file/                  the images (file.zip), or flat

Names start with the model (deepai, dreamStudio); the prompt's four comma-separated fields
(object, second object, place, style) become hyper-parameters.

Erratum: the release's xlsx lists ``dreamStudio_8_9_1_1.jpg`` twice (rows 1080 and 1081) with
different MOS, so neither row can be attributed; both are left out with a warning (1,078
records). Any other repeated name is an error.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.databases.paths import ImageRoot
from aigiqa.databases.registry import register_database
from aigiqa.databases.tables import (
    duplicate_problems,
    number_column,
    pick_folder,
    raise_problems,
    read_table,
    reject_options,
    text_column,
)
from aigiqa.errors import DatabaseError

AGIQA3K_INFO = DatabaseInfo(
    name="agiqa3k",
    score_range=(0.0, 5.0),
    target_names=("quality", "alignment"),
    citation=(
        "C. Li, Z. Zhang, H. Wu, W. Sun, X. Min, X. Liu, G. Zhai, W. Lin. AGIQA-3K: An Open "
        "Database for AI-Generated Image Quality Assessment. IEEE TCSVT, 2023. "
        "doi:10.1109/TCSVT.2023.3319020"
    ),
    url="https://github.com/lcysyzxdxc/AGIQA-3k-Database",
    description=(
        "2,982 images of 6 text-to-image models with varied steps and guidance; normalized MOS "
        "(0-5) and std for perceptual quality and text alignment."
    ),
)

AGIQA1K_INFO = DatabaseInfo(
    name="agiqa1k",
    score_range=(0.0, 5.0),
    target_names=("mos",),
    citation=(
        "Z. Zhang, C. Li, W. Sun, X. Liu, X. Min, G. Zhai. A Perceptual Quality Assessment "
        "Exploration for AIGC Images. ICME Workshops, 2023. arXiv:2303.12618"
    ),
    url="https://github.com/lcysyzxdxc/AGIQA-1k-Database",
    description="1,080 images of 2 diffusion models; z-scored perceptual MOS rescaled to 0-5.",
)

#: AGIQA-3K name prefix → generator (Li et al., TCSVT 2023).
AGIQA3K_GENERATORS = {
    "AttnGAN": "AttnGAN",
    "DALLE2": "DALL-E 2",
    "glide": "GLIDE",
    "midjourney": "Midjourney",
    "sd1.5": "Stable Diffusion 1.5",
    "xl2.2": "Stable Diffusion XL 2.2",
}

#: AGIQA-3K name variant → (inference steps, classifier-free guidance) relative to defaults.
AGIQA3K_VARIANTS = {
    "normal": ("default", "default"),
    "lowstep": ("low", "default"),
    "lowcorr": ("default", "low"),
    "highcorr": ("default", "high"),
}

AGIQA3K_COLUMNS = (
    "name", "prompt", "adj1", "adj2", "style",
    "mos_quality", "std_quality", "mos_align", "std_align",
)

_AGIQA3K_NAME = re.compile(r"^(?P<model>.+)_(?P<variant>[a-z]+)_(?P<index>\d+)\.[A-Za-z0-9]+$")


def _optional_text(values: list[str | None], i: int) -> str | None:
    value = values[i]
    return value if value else None


@register_database("agiqa3k")
def read_agiqa3k(
    root: Path, *, image_dir: str | None = None, follow_symlinks: bool = False, **options
) -> Database:
    """AGIQA-3K: targets quality, alignment (+ their std); hyper: variant, steps, cfg,
    prompt_index, adj1, adj2, style (where given). Images in ``image_dir`` (relative to
    ``root``) when given, else in the release's image folder."""
    reject_options("agiqa3k", options)
    root = Path(root)
    path = root / "data.csv"
    if not path.is_file():
        raise DatabaseError(f"{path}: annotation file not found (AGIQA-3K release: data.csv)")
    table = read_table(path, AGIQA3K_COLUMNS, required=["name", "prompt", "mos_quality",
                                                        "mos_align"])
    info = AGIQA3K_INFO
    problems: list[str] = []
    names = text_column(table, "name", problems)
    prompts = text_column(table, "prompt", problems)
    extras = {c: text_column(table, c, problems, required=False) for c in ("adj1", "adj2", "style")}
    scores = {
        "quality": number_column(table, "mos_quality", problems, score_range=info.score_range),
        "alignment": number_column(table, "mos_align", problems, score_range=info.score_range),
    }
    stds = {
        "quality_std": number_column(table, "std_quality", problems, score_range=(0, np.inf),
                                     required=table.has("std_quality")),
        "alignment_std": number_column(table, "std_align", problems, score_range=(0, np.inf),
                                       required=table.has("std_align")),
    }
    folder = root / image_dir if image_dir else pick_folder(
        root, ("AGIQA-3K", "AGIQA-3k", "AGIQA3K", "images", "image", ""))
    inside = ImageRoot(folder if image_dir else root, follow_symlinks=follow_symlinks)
    records, wheres = [], []
    for i, name in enumerate(names):
        if name is None:
            continue
        where = table.where(i)
        image_path = inside.path(folder, name, where, problems)
        if image_path is None:
            continue
        hyper: dict[str, object] = {}
        generator = None
        match = _AGIQA3K_NAME.match(name)
        if match and match["model"] in AGIQA3K_GENERATORS and match["variant"] in AGIQA3K_VARIANTS:
            generator = AGIQA3K_GENERATORS[match["model"]]
            steps, cfg = AGIQA3K_VARIANTS[match["variant"]]
            hyper = {"variant": match["variant"], "steps": steps, "cfg": cfg,
                     "prompt_index": int(match["index"])}
        else:
            problems.append(
                f"{where}: name {name!r} is not <model>_<variant>_<index>.jpg with model in "
                f"{', '.join(AGIQA3K_GENERATORS)} and variant in {', '.join(AGIQA3K_VARIANTS)}"
            )
        for key, values in extras.items():
            value = _optional_text(values, i)
            if value is not None:
                hyper[key] = value
        targets = {k: float(v[i]) for k, v in {**scores, **stds}.items() if np.isfinite(v[i])}
        records.append(Record(name, image_path, prompts[i], generator, "all", targets, hyper,
                              where))
        wheres.append(where)
    problems += duplicate_problems(names, [table.where(i) for i in range(len(table))])
    raise_problems(problems, f"{info.name} at {root}")
    return Database(info, records, root)


#: AGIQA-1K name prefix → generator (release README).
AGIQA1K_GENERATORS = {"deepai": "Stable Diffusion 2.0", "dreamStudio": "Stable Inpainting 1.0"}
#: The four comma-separated fields of every AGIQA-1K prompt.
AGIQA1K_FIELDS = ("object", "second_object", "place", "style")
#: Names the official xlsx lists more than once (see module docstring).
AGIQA1K_AMBIGUOUS = frozenset({"dreamStudio_8_9_1_1.jpg"})


def _agiqa1k_hyper(prompt: str | None) -> dict[str, object]:
    parts = [p.strip() for p in (prompt or "").split(",")]
    return dict(zip(AGIQA1K_FIELDS, parts, strict=True)) if len(parts) == 4 else {}


@register_database("agiqa1k")
def read_agiqa1k(
    root: Path, *, image_dir: str | None = None, follow_symlinks: bool = False, **options
) -> Database:
    """AGIQA-1K from AIGC_MOS_Zscore.xlsx (target mos, 0-5); hyper from the prompt fields.
    Images in ``image_dir`` (relative to ``root``) when given, else in ``file/`` or flat."""
    reject_options("agiqa1k", options)
    root = Path(root)
    path = root / "AIGC_MOS_Zscore.xlsx"
    if not path.is_file():
        raise DatabaseError(
            f"{path}: annotation file not found (AGIQA-1K release: AIGC_MOS_Zscore.xlsx)")
    table = read_table(path, ("Image", "Prompt", "MOS"))
    info = AGIQA1K_INFO
    problems: list[str] = []
    names = text_column(table, "Image", problems)
    prompts = text_column(table, "Prompt", problems)
    mos = number_column(table, "MOS", problems, score_range=info.score_range)
    folder = root / image_dir if image_dir else pick_folder(root, ("file", "images", ""))
    inside = ImageRoot(folder if image_dir else root, follow_symlinks=follow_symlinks)
    counts: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if name is not None:
            counts.setdefault(name, []).append(i)
    ambiguous = {n: rows for n, rows in counts.items() if n in AGIQA1K_AMBIGUOUS and len(rows) > 1}
    for name, rows in ambiguous.items():
        where = ", ".join(str(table.first_row + r) for r in rows)
        warnings.warn(
            f"{path.name} rows {where}: {name!r} is listed {len(rows)} times with different MOS "
            "(known erratum of the AGIQA-1K release); these rows are left out",
            stacklevel=2,
        )
    records, wheres = [], []
    for i, name in enumerate(names):
        if name is None or name in ambiguous:
            continue
        where = table.where(i)
        image_path = inside.path(folder, name, where, problems)
        if image_path is None:
            continue
        generator = AGIQA1K_GENERATORS.get(name.split("_", 1)[0])
        if generator is None:
            problems.append(
                f"{where}: cannot tell the generator of {name!r} (name prefix one of "
                f"{', '.join(AGIQA1K_GENERATORS)})"
            )
        hyper = _agiqa1k_hyper(prompts[i])
        targets = {"mos": float(mos[i])} if np.isfinite(mos[i]) else {}
        records.append(Record(name, image_path, prompts[i], generator, "all", targets, hyper,
                              where))
        wheres.append(where)
    problems += duplicate_problems([r.name for r in records], wheres)
    raise_problems(problems, f"{info.name} at {root}")
    return Database(info, records, root)
