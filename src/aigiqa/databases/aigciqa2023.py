"""AIGCIQA2023 (Wang et al., CICAI 2023), read from its release.

Release (download links in github wangjiarui153/AIGCIQA2023)::

    Image/allimg/<i>.png          2,400 images, i = 0..2399
    DATA/MOS/mosz1.mat            variable MOSz (2400x1): quality
    DATA/MOS/mosz2.mat            authenticity
    DATA/MOS/mosz3.mat            correspondence
    DATA/STD/SD{1,2,3}.mat        variable SD: their standard deviations (optional)
    AIGCIQA2023_Prompts.xlsx      100 rows, no header: category, challenge, prompt (GitHub repo)
    pic-index.xlsx                2,400 rows, no header: model, '<prompt>-<repeat>.png' (GitHub)

Image ``i`` is made by model ``i // 400`` (ControlNet, DALL-E, GLIDE, LAFITE, Stable Diffusion,
UniDiffuser) from prompt ``(i % 400) // 4`` (4 images per prompt). pic-index.xlsx states the same
mapping; when it is present the reader follows it. The two xlsx files are looked for in the
folder, in ``DATA/`` and ``DATA/MOS/``, or given as options. MOS are on a 0-100 scale.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import scipy.io

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.databases.paths import ImageRoot
from aigiqa.databases.registry import register_database
from aigiqa.databases.tables import (
    check_range,
    raise_problems,
    read_table,
    reject_options,
    text_column,
)
from aigiqa.errors import DatabaseError

INFO = DatabaseInfo(
    name="aigciqa2023",
    score_range=(0.0, 100.0),
    target_names=("quality", "authenticity", "correspondence"),
    citation=(
        "J. Wang, H. Duan, J. Liu, S. Chen, X. Min, G. Zhai. AIGCIQA2023: A Large-scale Image "
        "Quality Assessment Database for AI Generated Images: from the Perspectives of Quality, "
        "Authenticity and Correspondence. CICAI, 2023. arXiv:2307.00211"
    ),
    url="https://github.com/wangjiarui153/AIGCIQA2023",
    description=(
        "2,400 images of 6 text-to-image models from 100 prompts (4 each); MOS (0-100) for "
        "quality, authenticity and text-image correspondence."
    ),
)

#: Model blocks of 400 images, in release order; pic-index.xlsx spelling → generator.
MODELS = ("Controlnet", "DALLE", "Glide", "Lafite", "stable-diffusion", "Unidiffuser")
GENERATORS = {
    "controlnet": "ControlNet",
    "dalle": "DALL-E",
    "glide": "GLIDE",
    "lafite": "LAFITE",
    "stable-diffusion": "Stable Diffusion",
    "unidiffuser": "UniDiffuser",
}
N_IMAGES, N_PROMPTS, PER_PROMPT = 2400, 100, 4
MOS_FILES = {"quality": "mosz1.mat", "authenticity": "mosz2.mat", "correspondence": "mosz3.mat"}
STD_FILES = {"quality": "SD1.mat", "authenticity": "SD2.mat", "correspondence": "SD3.mat"}
PROMPTS_FILE = "AIGCIQA2023_Prompts.xlsx"
INDEX_FILE = "pic-index.xlsx"
_INDEX_NAME = re.compile(r"^(?P<prompt>\d+)-(?P<repeat>\d+)\.[A-Za-z0-9]+$")


def _find(root: Path, filename: str, given: str | Path | None) -> Path | None:
    if given is not None:
        path = Path(given) if Path(given).is_absolute() else root / given
        if not path.is_file():
            raise DatabaseError(f"{path}: file not found (given as option)")
        return path
    for folder in (root, root / "DATA", root / "DATA" / "MOS"):
        if (folder / filename).is_file():
            return folder / filename
    return None


def _read_mat(path: Path, key: str, problems: list[str]) -> np.ndarray | None:
    """The vector ``key`` of a MATLAB file, or None (with a problem) when absent or malformed."""
    if not path.is_file():
        problems.append(f"{path}: file not found")
        return None
    try:
        data = scipy.io.loadmat(path)
    except (OSError, ValueError, TypeError) as exc:
        problems.append(f"{path}: cannot read MATLAB file ({exc})")
        return None
    if key not in data:
        names = ", ".join(k for k in data if not k.startswith("__"))
        problems.append(f"{path}: no variable {key!r} (found: {names})")
        return None
    try:
        values = np.asarray(data[key], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        problems.append(f"{path}: variable {key!r} is not numeric ({exc})")
        return None
    if values.ndim > 2 or (values.ndim == 2 and min(values.shape) != 1):
        problems.append(f"{path}: {key!r} has shape {values.shape}, expected a vector")
        return None
    values = values.reshape(-1)
    if values.size != N_IMAGES:
        problems.append(f"{path}: {key!r} has {values.size} values, expected {N_IMAGES}")
        return None
    return values


def _read_prompts(path: Path, problems: list[str]) -> list[tuple[str | None, ...]]:
    table = read_table(path, ("category", "challenge", "prompt"), header=False)
    if len(table) != N_PROMPTS:
        problems.append(f"{path.name}: {len(table)} prompts, expected {N_PROMPTS}")
    cats = text_column(table, "category", problems, required=False)
    challenges = text_column(table, "challenge", problems, required=False)
    prompts = text_column(table, "prompt", problems)
    return list(zip(cats, challenges, prompts, strict=True))


def _read_index(path: Path, problems: list[str]) -> list[tuple[str | None, int | None]]:
    """Per image: generator and prompt index from pic-index.xlsx."""
    table = read_table(path, ("model", "file"), header=False)
    if len(table) != N_IMAGES:
        problems.append(f"{path.name}: {len(table)} rows, expected {N_IMAGES}")
    models = text_column(table, "model", problems)
    files = text_column(table, "file", problems)
    out: list[tuple[str | None, int | None]] = []
    for i, (model, file) in enumerate(zip(models, files, strict=True)):
        generator = GENERATORS.get((model or "").lower())
        if model is not None and generator is None:
            problems.append(f"{table.where(i)}: unknown model {model!r}")
        match = _INDEX_NAME.match(file or "")
        if file is not None and match is None:
            problems.append(f"{table.where(i)}: {file!r} is not '<prompt>-<repeat>.png'")
        out.append((generator, int(match["prompt"]) if match else None))
    return out


@register_database("aigciqa2023")
def read_aigciqa2023(
    root: Path,
    *,
    prompts_file: str | Path | None = None,
    index_file: str | Path | None = None,
    follow_symlinks: bool = False,
    **options,
) -> Database:
    """AIGCIQA2023: targets quality, authenticity, correspondence (+ *_std when DATA/STD is
    there); hyper: category, challenge, repeat. The image names are fixed (``<i>.png``); a
    symbolic link among them pointing outside ``root`` is refused unless ``follow_symlinks``."""
    reject_options("aigciqa2023", options)
    root = Path(root)
    problems: list[str] = []
    prompts_path = _find(root, PROMPTS_FILE, prompts_file)
    if prompts_path is None:
        problems.append(
            f"{root / PROMPTS_FILE}: prompt list not found (from {INFO.url}); "
            "give its path with prompts_file="
        )
        prompts: list[tuple[str | None, ...]] = []
    else:
        prompts = _read_prompts(prompts_path, problems)
    index_path = _find(root, INDEX_FILE, index_file)
    index = _read_index(index_path, problems) if index_path is not None else None
    targets: dict[str, np.ndarray] = {}
    for target, filename in MOS_FILES.items():
        path = root / "DATA" / "MOS" / filename
        values = _read_mat(path, "MOSz", problems)
        if values is not None:
            wheres = [f"{path.name} entry {i + 1}" for i in range(N_IMAGES)]
            problems += check_range(values, wheres, target, INFO.score_range)
            targets[target] = values
    if (root / "DATA" / "STD").is_dir():
        for target, filename in STD_FILES.items():
            path = root / "DATA" / "STD" / filename
            values = _read_mat(path, "SD", problems)
            if values is not None:
                wheres = [f"{path.name} entry {i + 1}" for i in range(N_IMAGES)]
                problems += check_range(values, wheres, f"{target} std", (0.0, np.inf))
                targets[f"{target}_std"] = values
    folder = root / "Image" / "allimg"
    inside = ImageRoot(root, follow_symlinks=follow_symlinks)
    paths = [inside.path(folder, f"{i}.png", f"image {i}", problems) for i in range(N_IMAGES)]
    raise_problems(problems, f"{INFO.name} at {root}")

    records = []
    for i in range(N_IMAGES):
        if index is not None:
            generator, prompt_index = index[i]
        else:
            generator = GENERATORS[MODELS[i // 400].lower()]
            prompt_index = (i % 400) // PER_PROMPT
        category, challenge, prompt = (
            prompts[prompt_index] if prompt_index is not None and prompt_index < len(prompts)
            else (None, None, None)
        )
        hyper = {"repeat": i % PER_PROMPT + 1}
        if category:
            hyper["category"] = category
        if challenge:
            hyper["challenge"] = challenge
        records.append(Record(
            name=f"{i}.png",
            path=paths[i],  # type: ignore[arg-type]  # None only with a problem raised above
            prompt=prompt,
            generator=generator,
            targets={k: float(v[i]) for k, v in targets.items()},
            hyper=hyper,
            source=f"image {i} (DATA/MOS entry {i + 1})",
        ))
    return Database(INFO, records, root)
