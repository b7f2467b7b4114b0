"""Build the embedded demo database: synthetic scenes, simulated generators and simulated raters.

``build_demo(out, n, seed)`` writes a folder in the AIGIQA-20K release layout (``info_train.csv``,
``info_val.csv``, ``info_test.csv`` with ``name,prompt,mos`` and the images in ``train/``, ``val/``,
``test/``, named ``<Generator>_<NNNN>.png``), so every tool of the package can be shown on it in
seconds. Nothing in it is a real AI-generated image and nothing is a real human rating:

* scenes (sky, sun or moon, clouds, mountains, ground, a house, trees, a balloon) are drawn with
  Pillow and described by a prompt ("a red house and two pine trees on a green meadow …");
* six simulated generators (``GENERATORS`` of :mod:`aigiqa.demo_generators`; prefixes that are
  not AIGIQA-20K model names) add artefacts at different levels: blur, noise, banding, colour
  cast, over-saturation and JPEG blocking; sometimes an element of the prompt is missing or has
  the wrong colour (misalignment);
* each image has generation hyper-parameters (steps, cfg) that drive the artefacts (few steps →
  more blur and noise, high cfg → over-saturation and cast, low cfg → more misalignment), written
  to ``hyperparameters.csv`` (name, steps, cfg): an addition of the demo, the release has none;
* 21 simulated raters (each with a bias and a gain) rate a latent quality, made from all artefacts,
  the alignment and an image-specific term no metric can see, on the 0–100 slider; ratings are
  written to ``ratings.csv`` (subject, image, score: what ``aigiqa mos`` reads) and MOS = mean /
  20, on 0–5 (``aigiqa mos ratings.csv --method mos --no-screen --scale 0,100 --target-range
  0,5`` gives it back).

Splits are 70/10/20 % (train/val/test). All three info files carry MOS unless ``blind=True``,
which writes val/test as ``name,prompt`` like the real release. Same seed → byte-identical files.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from aigiqa.demo_generators import ARTEFACTS, PROFILES, GeneratorProfile
from aigiqa.demo_generators import GENERATORS as GENERATORS
from aigiqa.demo_scenes import SIZE as SIZE
from aigiqa.demo_scenes import describe, elements, misalign, render, sample_scene
from aigiqa.errors import AigiqaError

N_RATERS = 21
SPLITS = (("train", 0.7), ("val", 0.1), ("test", 0.2))

_NAME_RE = re.compile(rf"^({'|'.join(PROFILES)})_\d{{4}}\.png$")


def sample_hyper(profile: GeneratorProfile, rng: np.random.Generator) -> tuple[int, float]:
    """Sampler steps and classifier-free guidance scale (cfg, 0.5 steps) of one generation."""
    steps = int(rng.choice(profile.steps))
    cfg = float(np.round(rng.uniform(*profile.cfg) * 2) / 2)
    return steps, cfg


def artefact_strengths(profile: GeneratorProfile, steps: int, cfg: float,
                       rng: np.random.Generator) -> dict[str, float]:
    """Per-image artefact strengths in [0, 1]: the generator's level, jittered, plus the
    effect of the hyper-parameters (few steps → noise and blur, high cfg → saturation and cast)."""
    few_steps = float(np.clip((25 - steps) / 21, 0, 1))
    high_cfg = float(np.clip((cfg - 8) / 7, 0, 1))
    extra = {"noise": 0.12 * few_steps, "blur": 0.3 * few_steps,
             "saturation": 0.35 * high_cfg, "cast": 0.15 * high_cfg}
    out = {}
    for name in ARTEFACTS:
        level = profile.artefacts[name] * rng.uniform(0.2, 1.8) + extra.get(name, 0.0)
        out[name] = float(np.clip(level, 0.0, 1.0))
    return out


def miss_probability(profile: GeneratorProfile, cfg: float) -> float:
    """Chance that an element of the prompt is wrong; low cfg follows the prompt less."""
    return float(np.clip(profile.miss_rate + 0.3 * np.clip((5 - cfg) / 4, 0, 1), 0, 1))


def apply_artefacts(image: np.ndarray, strengths: dict[str, float],
                    rng: np.random.Generator) -> np.ndarray:
    """Degrade an RGB uint8 image by the given strengths (0–1); RGB uint8 of the same shape."""
    x = image.astype(np.float64)
    gray = x @ np.array([0.299, 0.587, 0.114])
    x = gray[..., None] + (1 + 1.5 * strengths["saturation"]) * (x - gray[..., None])
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    x = x + 60 * strengths["cast"] * direction
    sigma = 3.5 * strengths["blur"]
    if sigma > 0.1:
        x = gaussian_filter(x, sigma=(sigma, sigma, 0), mode="nearest")
    x = x + rng.normal(scale=20 * strengths["noise"], size=x.shape)
    x = np.clip(x, 0, 255)
    if strengths["banding"] > 0.05:
        levels = max(3, int(round(2 ** (8 - 5.5 * strengths["banding"]))))
        x = np.round(x / 255 * (levels - 1)) * (255 / (levels - 1))
    out = np.clip(np.round(x), 0, 255).astype(np.uint8)
    if strengths["blocking"] > 0.05:
        buffer = io.BytesIO()
        quality = int(round(90 - 85 * strengths["blocking"]))
        Image.fromarray(out).save(buffer, format="JPEG", quality=quality, subsampling=2)
        buffer.seek(0)
        out = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.uint8)
    return out


#: How much each artefact at full strength hurts the latent quality (before saturation).
DAMAGE = {"blur": 1.4, "noise": 1.5, "banding": 1.0, "cast": 0.9, "saturation": 0.8,
          "blocking": 1.0}


def latent_quality(strengths: dict[str, float], misaligned: float, n_objects: int,
                   idiosyncratic: float) -> float:
    """The quality (0–5) raters perceive: artefact damage (saturating), alignment, content."""
    damage = sum(DAMAGE[a] * strengths[a] for a in ARTEFACTS)
    q = 0.5 + 4.4 * np.exp(-0.7 * damage) - 1.6 * misaligned
    q += 0.08 * (n_objects - 3) + idiosyncratic
    return float(np.clip(q, 0.0, 5.0))


def _split_counts(n: int) -> list[int]:
    train, val = round(0.7 * n), round(0.1 * n)
    return [train, val, n - train - val]


def _prepare(out: Path) -> None:
    """Create ``out`` or clear a previous demo in it; refuse a folder with other content."""
    if out.exists() and not out.is_dir():
        raise AigiqaError(f"{out}: demo output exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / "hyperparameters.csv").is_file():
            raise AigiqaError(f"{out}: folder is not empty and holds no previous demo; "
                              "choose an empty or new folder")
        for split, _ in SPLITS:
            folder = out / split
            if folder.is_dir():
                for f in folder.iterdir():
                    if f.is_file() and _NAME_RE.match(f.name):
                        f.unlink()
                if not any(folder.iterdir()):
                    shutil.rmtree(folder)
        for name in ("info_train.csv", "info_val.csv", "info_test.csv", "hyperparameters.csv",
                     "ratings.csv", "README.txt"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def build_demo(out: Path, n: int = 300, seed: int = 0, *, blind: bool = False) -> Path:
    """Write the demo database (n images, 256×256 PNG) to ``out``; returns ``out``.

    Same ``seed`` → byte-identical files. A folder holding a previous demo is replaced; any other
    non-empty folder is refused. ``blind=True`` writes val/test without MOS.
    """
    out = Path(out)
    if isinstance(n, bool) or not isinstance(n, int) or not 10 <= n <= 6 * 10_000:
        raise AigiqaError(f"demo: n={n!r} is invalid; use an integer from 10 to 60000")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise AigiqaError(f"demo: seed={seed!r} is invalid; use an integer >= 0")
    _prepare(out)

    root_seq, *image_seqs = np.random.SeedSequence(seed).spawn(n + 1)
    rng = np.random.default_rng(root_seq)
    prefixes = list(PROFILES)
    generator_of = rng.permutation(np.resize(np.arange(len(prefixes)), n))
    order = rng.permutation(n)
    split_of = np.empty(n, dtype=object)
    start = 0
    for (split, _), count in zip(SPLITS, _split_counts(n), strict=True):
        split_of[order[start:start + count]] = split
        start += count
    rater_bias = rng.normal(0.0, 0.35, N_RATERS)
    rater_gain = rng.uniform(0.8, 1.2, N_RATERS)

    rows: dict[str, list[tuple[str, str, float]]] = {split: [] for split, _ in SPLITS}
    hyper_rows, rating_rows = [], []
    counters = dict.fromkeys(prefixes, 0)
    for i in range(n):
        irng = np.random.default_rng(image_seqs[i])
        prefix = prefixes[generator_of[i]]
        profile = PROFILES[prefix]
        name = f"{prefix}_{counters[prefix]:04d}.png"
        counters[prefix] += 1

        scene = sample_scene(irng)
        prompt = describe(scene, irng)
        steps, cfg = sample_hyper(profile, irng)
        strengths = artefact_strengths(profile, steps, cfg, irng)
        drawn, wrong = scene, 0
        p_miss = miss_probability(profile, cfg)
        while wrong < 2 and len(elements(drawn)) > 1 and irng.random() < p_miss:
            drawn, wrong = misalign(drawn, irng), wrong + 1
        image = apply_artefacts(render(drawn, irng), strengths, irng)
        split = split_of[i]
        (out / split).mkdir(exist_ok=True)
        Image.fromarray(image).save(out / split / name, format="PNG")

        quality = latent_quality(strengths, wrong / len(elements(scene)), len(elements(scene)),
                                 float(irng.normal(0.0, 0.25)))
        raw = 2.5 + rater_gain * (quality - 2.5) + rater_bias + irng.normal(0, 0.6, N_RATERS)
        slider = np.clip(np.round(raw * 20), 0, 100).astype(int)
        mos = float(np.clip(slider.mean() / 20, 0.0, 5.0))
        rows[split].append((name, prompt, mos))
        hyper_rows.append((name, steps, cfg))
        rating_rows.extend((f"R{r + 1:02d}", name, int(v)) for r, v in enumerate(slider))

    for split, _ in SPLITS:
        with_mos = not blind or split == "train"
        _write_csv(out / f"info_{split}.csv", ["name", "prompt", "mos"] if with_mos else
                   ["name", "prompt"],
                   [(nm, p, f"{m:.6f}") if with_mos else (nm, p) for nm, p, m in
                    sorted(rows[split])])
    _write_csv(out / "hyperparameters.csv", ["name", "steps", "cfg"],
               [(nm, s, f"{c:.1f}") for nm, s, c in sorted(hyper_rows)])
    _write_csv(out / "ratings.csv", ["subject", "image", "score"],
               sorted(rating_rows, key=lambda row: (row[1], row[0])))
    (out / "README.txt").write_text(_README.format(n=n, seed=seed), encoding="utf-8")
    return out


def _write_csv(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


_README = """\
aigiqa demo database (n={n}, seed={seed}) -- SYNTHETIC.

Procedurally drawn scenes, six simulated "generators" (Crisp, Blurry, Noisy, Banded, Tinted,
Vivid) and 21 simulated raters. Not real AI-generated images, not real human ratings.
Layout of the AIGIQA-20K release: info_{{train,val,test}}.csv (name,prompt[,mos]) and
train/ val/ test/ image folders. Additions of the demo: hyperparameters.csv (name,steps,cfg)
and ratings.csv (subject,image,score on the 0-100 slider; mos = mean / 20), which
  aigiqa mos ratings.csv --out mos.csv --method mos --no-screen --scale 0,100 --target-range 0,5
turns back into the info files' MOS.
Read it with aigiqa.load_database("demo", <this folder>).
"""
