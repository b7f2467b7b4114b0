"""PKU-AIGIQA-4K (Yuan et al., 2024), read from its release (github jiquan123/AIGIQA4K).

Release::

    annotation.xlsx       Generated_image, Image_prompt, Text_prompt, MOS_q, MOS_a, MOS_c
    All/                  every generated image (4,000)
    I2I/Image_prompt/     the image prompts of the image-to-image part

``Image_prompt`` is empty for text-to-image images (the first 1,600 rows are image-to-image).
MOS_q / MOS_a / MOS_c are quality, authenticity and text-image correspondence; the scale is taken
as 0-100 (z-scores rescaled, as in AIGCIQA2023); pass ``score_range=`` if a copy differs. A
generator column (``Generator`` or ``Model``), when present, fills the generator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.databases.paths import ImageRoot
from aigiqa.databases.registry import register_database
from aigiqa.databases.tables import (
    duplicate_problems,
    find_table,
    number_column,
    raise_problems,
    read_table,
    reject_options,
    text_column,
)
from aigiqa.errors import DatabaseError

INFO = DatabaseInfo(
    name="pku-aigiqa-4k",
    score_range=(0.0, 100.0),
    target_names=("quality", "authenticity", "correspondence"),
    citation=(
        "J. Yuan, F. Yang, J. Li, X. Cao, J. Che, J. Lin, X. Cao. PKU-AIGIQA-4K: A Perceptual "
        "Quality Assessment Database for Both Text-to-Image and Image-to-Image AI-Generated "
        "Images. arXiv:2404.18409, 2024"
    ),
    url="https://github.com/jiquan123/AIGIQA4K",
    description=(
        "4,000 text-to-image and image-to-image generated images; MOS for quality, authenticity "
        "and text-image correspondence."
    ),
)

COLUMNS = ("Generated_image", "Image_prompt", "Text_prompt", "MOS_q", "MOS_a", "MOS_c")
TARGET_COLUMNS = {"quality": "MOS_q", "authenticity": "MOS_a", "correspondence": "MOS_c"}


@register_database("pku-aigiqa-4k")
def read_pku_aigiqa4k(
    root: Path,
    *,
    score_range: tuple[float, float] | None = None,
    follow_symlinks: bool = False,
    **options,
) -> Database:
    """PKU-AIGIQA-4K: targets quality, authenticity, correspondence; hyper: task
    ('text-to-image' / 'image-to-image') and image_prompt (path) where given."""
    reject_options("pku-aigiqa-4k", options)
    root = Path(root)
    info = INFO
    if score_range is not None:
        lo, hi = (float(v) for v in score_range)
        info = DatabaseInfo(info.name, (lo, hi), info.target_names, info.citation, info.url,
                            info.description)
    path = find_table(root, "annotation")
    if path is None:
        raise DatabaseError(f"{root / 'annotation.xlsx'}: annotation file not found")
    table = read_table(path, COLUMNS, required=["Generated_image", "Text_prompt", "MOS_q"])
    problems: list[str] = []
    names = text_column(table, "Generated_image", problems)
    prompts = text_column(table, "Text_prompt", problems)
    image_prompts = text_column(table, "Image_prompt", problems, required=False)
    gen_column = next((c for c in ("Generator", "generator", "Model", "model") if table.has(c)),
                      None)
    generators = (text_column(table, gen_column, problems, required=False) if gen_column
                  else [None] * len(table))
    scores = {t: number_column(table, c, problems, score_range=info.score_range)
              for t, c in TARGET_COLUMNS.items() if table.has(c)}
    folder = root / "All"
    prompt_folder = root / "I2I" / "Image_prompt"
    inside = ImageRoot(root, follow_symlinks=follow_symlinks)
    records = []
    for i, name in enumerate(names):
        if name is None:
            continue
        where = table.where(i)
        image_prompt = image_prompts[i]
        hyper: dict[str, object] = {"task": "image-to-image" if image_prompt else "text-to-image"}
        if image_prompt:
            prompt_path = inside.path(prompt_folder, image_prompt, where, problems,
                                      what="image prompt")
            if prompt_path is not None:
                hyper["image_prompt"] = str(prompt_path)
        image_path = inside.path(folder, name, where, problems)
        if image_path is None:
            continue
        targets = {t: float(v[i]) for t, v in scores.items() if np.isfinite(v[i])}
        records.append(Record(name, image_path, prompts[i], generators[i], "all", targets, hyper,
                              where))
    problems += duplicate_problems(names, [table.where(i) for i in range(len(table))])
    raise_problems(problems, f"{info.name} at {root}")
    return Database(info, records, root)
