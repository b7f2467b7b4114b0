"""The scenes of the demo database: what an image shows, its prompt, and its drawing.

A scene (sky, sun or moon, clouds, mountains, ground, a house, trees, a balloon) is sampled,
described by a prompt ("a red house and two pine trees on a green meadow …"), possibly
misaligned (an element dropped or recoloured, as a weak generator would) and drawn with Pillow.
Used by ``aigiqa.demo.build_demo``; every random choice comes from the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

SIZE = 256
_SUPER = 2  # scenes are drawn at SIZE * _SUPER and downsampled (anti-aliased edges)

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
