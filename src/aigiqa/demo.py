"""Build the embedded demo database: synthetic scenes, simulated generators and simulated raters.

``build_demo(out, n, seed)`` writes a folder in the AIGIQA-20K release layout (``info_train.csv``,
``info_val.csv``, ``info_test.csv`` with ``name,prompt,mos`` and the images in ``train/``, ``val/``,
``test/``, named ``<Generator>_<NNNN>.png``), so every tool of the package can be shown on it in
seconds. Nothing in it is a real AI-generated image and nothing is a real human rating:

* scenes (sky, sun or moon, clouds, mountains, ground, a house, trees, a balloon) are drawn with
  Pillow and described by a prompt ("a red house and two pine trees on a green meadow …");
* six simulated generators (``GENERATORS``; prefixes that are not AIGIQA-20K model names) add
  artefacts at different levels: blur, noise, banding, colour cast, over-saturation and JPEG
  blocking; sometimes an element of the prompt is missing or has the wrong colour (misalignment);
* each image has generation hyper-parameters (steps, cfg) that drive the artefacts (few steps →
  more blur and noise, high cfg → over-saturation and cast, low cfg → more misalignment), written
  to ``hyperparameters.csv`` (name, steps, cfg): an addition of the demo, the release has none;
* 21 simulated raters (each with a bias and a gain) rate a latent quality, made from all artefacts,
  the alignment and an image-specific term no metric can see, on the 0–100 slider; ratings are
  written to ``ratings.csv`` (name, rater, rating) and MOS = mean / 20, on 0–5.

Splits are 70/10/20 % (train/val/test). All three info files carry MOS unless ``blind=True``,
which writes val/test as ``name,prompt`` like the real release. Same seed → byte-identical files.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

from aigiqa.errors import AigiqaError

SIZE = 256
_SUPER = 2  # scenes are drawn at SIZE * _SUPER and downsampled (anti-aliased edges)
N_RATERS = 21
SPLITS = (("train", 0.7), ("val", 0.1), ("test", 0.2))
ARTEFACTS = ("blur", "noise", "banding", "cast", "saturation", "blocking")


@dataclass(frozen=True)
class GeneratorProfile:
    """A simulated text-to-image model: mean artefact strengths (0–1) and its sampler settings."""

    full_name: str
    artefacts: dict[str, float]
    miss_rate: float  # probability that one prompt element is wrong
    steps: tuple[int, ...]
    cfg: tuple[float, float]


def _profile(full: str, miss: float, steps: tuple[int, ...], cfg: tuple[float, float],
             **strengths: float) -> GeneratorProfile:
    return GeneratorProfile(full, {a: strengths.get(a, 0.03) for a in ARTEFACTS}, miss, steps, cfg)


#: Name prefix → profile. None of the prefixes is an AIGIQA-20K model name.
PROFILES: dict[str, GeneratorProfile] = {
    "Crisp": _profile("Crisp (simulated)", 0.10, (25, 30, 40, 50), (5.0, 9.0),
                      saturation=0.10),
    "Blurry": _profile("Blurry (simulated)", 0.15, (10, 20, 30, 50), (3.0, 10.0),
                       blur=0.55, blocking=0.10),
    "Noisy": _profile("Noisy (simulated)", 0.15, (4, 8, 15, 25), (4.0, 12.0),
                      noise=0.3, blur=0.08),
    "Banded": _profile("Banded (simulated)", 0.15, (15, 25, 40), (4.0, 12.0),
                       banding=0.55, blocking=0.35),
    "Tinted": _profile("Tinted (simulated)", 0.15, (20, 30, 50), (5.0, 15.0),
                       cast=0.55, saturation=0.15),
    "Vivid": _profile("Vivid (simulated)", 0.35, (8, 20, 30), (1.5, 15.0),
                      saturation=0.50, blur=0.06),
}
#: Name prefix → full generator name (what the database reader reports).
GENERATORS: dict[str, str] = {k: p.full_name for k, p in PROFILES.items()}

_COLOURS = {
    "red": (200, 40, 40), "blue": (40, 80, 200), "yellow": (235, 200, 40),
    "white": (235, 235, 230), "green": (50, 150, 60), "orange": (235, 130, 30),
    "purple": (130, 60, 160), "pink": (230, 120, 170), "brown": (120, 80, 45),
    "grey": (120, 120, 125),
}
_SKIES = {  # name → (top, bottom) colours; the phrase used in the prompt
    "blue": ((50, 110, 210), (165, 205, 245), "a blue sky"),
    "sunset": ((120, 60, 140), (250, 150, 70), "a sunset sky"),
    "night": ((10, 15, 45), (40, 50, 100), "a night sky"),
    "overcast": ((130, 135, 145), (190, 192, 198), "an overcast sky"),
    "dawn": ((200, 150, 190), (250, 215, 180), "a pink dawn sky"),
}
_GROUNDS = {
    "meadow": ((70, 150, 60), "on a green meadow"),
    "sand": ((220, 195, 130), "on a sandy beach"),
    "snow": ((235, 238, 245), "in a snowy field"),
    "field": ((140, 100, 55), "on a brown field"),
}
_COUNT_WORDS = {1: "a", 2: "two", 3: "three"}
_NAME_RE = re.compile(rf"^({'|'.join(PROFILES)})_\d{{4}}\.png$")


@dataclass(frozen=True)
class Scene:
    """What a demo image shows; ``None`` means the element is absent."""

    sky: str
    ground: str
    sun: str | None  # colour of the sun, or "moon"
    clouds: bool
    mountains: str | None
    house: str | None  # wall colour
    trees: int
    tree_kind: str  # "pine" or "round"
    balloon: str | None
    horizon: float  # fraction of the height


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a random scene with at least two objects besides sky and ground."""
    while True:
        sky = str(rng.choice(list(_SKIES)))
        sun = None
        if rng.random() < 0.7:
            sun = "moon" if sky == "night" else str(rng.choice(["yellow", "orange", "white"]))
        scene = Scene(
            sky=sky,
            ground=str(rng.choice(list(_GROUNDS))),
            sun=sun,
            clouds=bool(sky not in ("night", "overcast") and rng.random() < 0.4),
            mountains=str(rng.choice(["grey", "purple", "blue", "brown"]))
            if rng.random() < 0.5 else None,
            house=str(rng.choice(["red", "blue", "yellow", "white", "green", "orange"]))
            if rng.random() < 0.6 else None,
            trees=int(rng.choice([0, 0, 1, 2, 3])),
            tree_kind=str(rng.choice(["pine", "round"])),
            balloon=str(rng.choice(["red", "blue", "yellow", "pink", "purple"]))
            if rng.random() < 0.3 else None,
            horizon=float(rng.uniform(0.55, 0.75)),
        )
        if len(elements(scene)) >= 2:
            return scene


def elements(scene: Scene) -> list[str]:
    """The objects a prompt mentions and a generator can get wrong."""
    names = ["sun", "clouds", "mountains", "house", "trees", "balloon"]
    return [e for e in names if getattr(scene, e)]


def describe(scene: Scene, rng: np.random.Generator) -> str:
    """A prompt for the scene, e.g. "a red house and two pine trees on a green meadow, …"."""
    main = []
    if scene.house:
        main.append(f"{_article(scene.house)} {scene.house} house")
    if scene.trees:
        word = "tree" if scene.trees == 1 else "trees"
        main.append(f"{_COUNT_WORDS[scene.trees]} {scene.tree_kind} {word}")
    if scene.balloon:
        main.append(f"{_article(scene.balloon)} {scene.balloon} balloon")
    if scene.mountains and not main:
        main.append(f"{scene.mountains} mountains")
    text = " and ".join(main) if main else "a landscape"
    text += " " + _GROUNDS[scene.ground][1]
    if scene.mountains and not text.startswith(f"{scene.mountains} mountains"):
        text += f" in front of {scene.mountains} mountains"
    text += " under " + _SKIES[scene.sky][2]
    extras = []
    if scene.sun:
        extras.append("a white moon" if scene.sun == "moon" else
                      f"{_article(scene.sun)} {scene.sun} sun")
    if scene.clouds:
        extras.append("white clouds")
    if extras:
        text += " with " + " and ".join(extras)
    style = str(rng.choice(["", ", flat illustration", ", simple vector art", ", children's book"
                            " drawing", ", minimalist poster"]))
    return text + style


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def misalign(scene: Scene, rng: np.random.Generator) -> Scene:
    """The scene with one prompt element dropped or recoloured (what a weak generator draws)."""
    element = str(rng.choice(elements(scene)))
    if element in ("house", "balloon") and rng.random() < 0.5:
        wrong = [c for c in ("red", "blue", "yellow", "green", "purple") if c != getattr(
            scene, element)]
        return replace(scene, **{element: str(rng.choice(wrong))})
    return replace(scene, **{element: False if element == "clouds" else
                             0 if element == "trees" else None})


def render(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Draw the scene; RGB uint8 (SIZE, SIZE, 3)."""
    s = SIZE * _SUPER
    horizon = int(scene.horizon * s)
    top, bottom, _ = _SKIES[scene.sky]
    t = np.linspace(0.0, 1.0, horizon)[:, None]
    sky = (1 - t) * np.array(top) + t * np.array(bottom)
    canvas = np.empty((s, s, 3), dtype=np.uint8)
    canvas[:horizon] = np.round(sky).astype(np.uint8)[:, None, :]
    canvas[horizon:] = _GROUNDS[scene.ground][0]
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)

    if scene.sun:
        r = int(rng.uniform(0.05, 0.09) * s)
        cx, cy = int(rng.uniform(0.15, 0.85) * s), int(rng.uniform(0.1, 0.3) * s)
        colour = (245, 245, 225) if scene.sun == "moon" else _COLOURS[scene.sun]
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    if scene.clouds:
        for _ in range(int(rng.integers(2, 4))):
            cx, cy = rng.uniform(0.1, 0.9) * s, rng.uniform(0.08, 0.35) * s
            for _ in range(4):
                dx, dy, r = rng.uniform(-0.06, 0.06) * s, rng.uniform(-0.02, 0.02) * s, 0.045 * s
                draw.ellipse((cx + dx - 1.6 * r, cy + dy - r, cx + dx + 1.6 * r, cy + dy + r),
                             fill=(250, 250, 252))
    if scene.mountains:
        base = np.array(_COLOURS[scene.mountains])
        xs = np.sort(rng.uniform(0, s, int(rng.integers(2, 5))))
        for x in xs:
            w, h = rng.uniform(0.2, 0.4) * s, rng.uniform(0.2, 0.4) * s
            shade = tuple(int(c) for c in np.clip(base * rng.uniform(0.8, 1.1), 0, 255))
            draw.polygon([(x - w, horizon), (x, horizon - h), (x + w, horizon)], fill=shade)
            draw.polygon([(x - 0.18 * w, horizon - 0.82 * h), (x, horizon - h),
                          (x + 0.18 * w, horizon - 0.82 * h)], fill=(245, 245, 250))
    # ground texture: short strokes a little darker or lighter than the ground
    ground = np.array(_GROUNDS[scene.ground][0], dtype=float)
    for _ in range(300):
        x, y = rng.uniform(0, s), rng.uniform(horizon + 4, s)
        shade = tuple(int(c) for c in np.clip(ground * rng.uniform(0.7, 1.2), 0, 255))
        draw.line((x, y, x + rng.uniform(-4, 4), y - rng.uniform(3, 10)), fill=shade, width=2)
    if scene.house:
        w = rng.uniform(0.25, 0.35) * s
        x0 = rng.uniform(0.2, 0.8) * s - w / 2
        y1 = horizon + rng.uniform(0.03, 0.12) * s
        y0 = y1 - 0.7 * w
        draw.rectangle((x0, y0, x0 + w, y1), fill=_COLOURS[scene.house], outline=(40, 30, 30),
                       width=2)
        roof = tuple(int(c) for c in rng.choice([(110, 40, 30), (80, 80, 90), (100, 70, 40)]))
        draw.polygon([(x0 - 0.1 * w, y0), (x0 + w / 2, y0 - 0.45 * w), (x0 + 1.1 * w, y0)],
                     fill=roof)
        draw.rectangle((x0 + 0.42 * w, y1 - 0.35 * w, x0 + 0.58 * w, y1), fill=(70, 45, 30))
        for wx in (0.12, 0.7):
            draw.rectangle((x0 + wx * w, y0 + 0.15 * w, x0 + (wx + 0.18) * w, y0 + 0.32 * w),
                           fill=(170, 210, 235), outline=(40, 30, 30), width=2)
    for _ in range(scene.trees):
        x = rng.uniform(0.08, 0.92) * s
        y = horizon + rng.uniform(0.05, 0.3) * s
        h = rng.uniform(0.18, 0.3) * s
        draw.rectangle((x - 0.04 * h, y - 0.3 * h, x + 0.04 * h, y), fill=(90, 60, 35))
        green = (int(rng.integers(20, 70)), int(rng.integers(100, 160)), int(rng.integers(30, 70)))
        if scene.tree_kind == "pine":
            for k in range(3):
                yy = y - 0.25 * h - k * 0.22 * h
                ww = 0.3 * h * (1 - 0.25 * k)
                draw.polygon([(x - ww, yy), (x, yy - 0.4 * h), (x + ww, yy)], fill=green)
        else:
            r = 0.3 * h
            draw.ellipse((x - r, y - 0.3 * h - 2 * r, x + r, y - 0.3 * h), fill=green)
    if scene.balloon:
        cx, cy, r = rng.uniform(0.15, 0.85) * s, rng.uniform(0.2, 0.45) * s, 0.05 * s
        draw.line((cx, cy + 1.2 * r, cx + rng.uniform(-10, 10), cy + 4 * r), fill=(60, 60, 60),
                  width=2)
        draw.ellipse((cx - r, cy - 1.2 * r, cx + r, cy + 1.2 * r), fill=_COLOURS[scene.balloon])
    small = image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.uint8)


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
        rating_rows.extend((name, f"R{r + 1:02d}", int(v)) for r, v in enumerate(slider))

    for split, _ in SPLITS:
        with_mos = not blind or split == "train"
        _write_csv(out / f"info_{split}.csv", ["name", "prompt", "mos"] if with_mos else
                   ["name", "prompt"],
                   [(nm, p, f"{m:.6f}") if with_mos else (nm, p) for nm, p, m in
                    sorted(rows[split])])
    _write_csv(out / "hyperparameters.csv", ["name", "steps", "cfg"],
               [(nm, s, f"{c:.1f}") for nm, s, c in sorted(hyper_rows)])
    _write_csv(out / "ratings.csv", ["name", "rater", "rating"], sorted(rating_rows))
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
and ratings.csv (name,rater,rating on the 0-100 slider; mos = mean / 20).
Read it with aigiqa.load_database("demo", <this folder>).
"""
