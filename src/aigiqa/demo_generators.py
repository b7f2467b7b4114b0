"""The demo's six simulated text-to-image models: name prefixes, full names, artefact profiles.

Shared by the demo builder (:mod:`aigiqa.demo`, which draws the images) and the demo database
reader (:mod:`aigiqa.databases.demo`, which only needs the names); nothing here draws.
"""

from __future__ import annotations

from dataclasses import dataclass

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
