"""The report's plots: matplotlib figures on an Agg canvas (imported lazily), as base64 PNG."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aigiqa.errors import AigiqaError

MAX_POINTS = 3000
"""Points drawn per scatter panel (a seeded subsample, for display only; numbers use all)."""
BARS_PER_ROW = 64
"""Most bars on one row of the per-generator chart (longer charts wrap onto more rows)."""


@dataclass(frozen=True)
class Panel:
    """One scatter panel: its title and x label, predictions and targets (equal length)."""

    title: str
    xlabel: str
    pred: np.ndarray
    truth: np.ndarray


def plot_png(draw: Callable[[Any], None]) -> str:
    """Run ``draw(fig)`` on a fresh Agg figure; the PNG as base64 text."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(layout="constrained")
    FigureCanvasAgg(fig)
    draw(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    fig.clear()
    return base64.b64encode(buf.getvalue()).decode("ascii")


def draw_scatter(fig: Any, panels: Sequence[Panel], target: str) -> None:
    """One scatter per panel (at most :data:`MAX_POINTS` points, a seeded subsample) with the
    fitted logistic mapping drawn over it; four panels per row."""
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig.set_size_inches(3.3 * ncols, 3.0 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    rng = np.random.default_rng(0)
    for ax, panel in zip(axes.flat, panels, strict=False):
        pred, truth = panel.pred, panel.truth
        ax.set_title(plain(panel.title), fontsize=9)
        ax.set_xlabel(panel.xlabel, fontsize=8)
        ax.set_ylabel(target, fontsize=8)
        ax.tick_params(labelsize=7)
        if len(pred) == 0:
            ax.text(0.5, 0.5, "no scored image", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8)
            continue
        show = rng.choice(len(pred), MAX_POINTS, replace=False) if len(pred) > MAX_POINTS \
            else slice(None)
        ax.scatter(pred[show], truth[show], s=4, alpha=0.35, linewidths=0, color="#2a5db0",
                   rasterized=True)
        curve = _logistic(pred, truth)
        if curve is not None:
            xs = np.linspace(float(pred.min()), float(pred.max()), 200)
            ax.plot(xs, curve(xs), color="#d62728", linewidth=1.6)
        ax.grid(alpha=0.25, linewidth=0.5)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)


def draw_bars(fig: Any, pivot: pd.DataFrame) -> None:
    """Grouped SRCC bars (metrics side by side per generator), wrapped onto several rows so
    that a row holds at most :data:`BARS_PER_ROW` bars."""
    generators, specs = list(pivot.index), list(pivot.columns)
    per_row = max(1, BARS_PER_ROW // max(1, len(specs)))
    nrows = math.ceil(len(generators) / per_row)
    per_row = math.ceil(len(generators) / nrows)  # balance the rows
    width = min(14.0, max(6.0, 1.0 + per_row * (0.3 + 0.13 * len(specs))))
    fig.set_size_inches(width, 0.6 + 2.6 * nrows)
    axes = fig.subplots(nrows, 1, squeeze=False, sharey=True)[:, 0]
    colors = _colors(len(specs))
    step = 0.82 / max(1, len(specs))
    values = pivot.to_numpy(float)
    low = float(np.nanmin(values)) if np.isfinite(values).any() else 0.0
    for r, ax in enumerate(axes):
        chunk = generators[r * per_row:(r + 1) * per_row]
        x = np.arange(len(chunk))
        for i, spec in enumerate(specs):
            ax.bar(x - 0.41 + step * (i + 0.5), pivot.loc[chunk, spec].to_numpy(float), step,
                   label=plain(spec) if r == 0 else None, color=colors[i])
        ax.set_xticks(x, [str(g) for g in chunk], fontsize=8, rotation=30, ha="right")
        ax.set_xlim(-0.5, per_row - 0.5)
        ax.set_ylim(min(0.0, low - 0.05), 1.0)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_ylabel("SRCC", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3, linewidth=0.5)
    fig.legend(fontsize=7.5, ncols=min(len(specs), 6), loc="outside upper center", frameon=False)


def plain(text: str) -> str:
    """Text for a matplotlib label, shown literally (no mathtext from ``$``)."""
    return str(text).replace("$", r"\$")


def _colors(n: int) -> list:
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    order = [*range(0, 20, 2), *range(1, 20, 2)]  # the 10 strong hues first, then their light ones
    return [colormaps["tab20"](order[i % 20]) for i in range(n)]


def _logistic(pred: np.ndarray, truth: np.ndarray) -> Callable[[np.ndarray], np.ndarray] | None:
    """The fitted logistic mapping prediction → target for the plot (None if it cannot fit)."""
    from aigiqa.evaluation import fit_logistic

    if len(pred) < 3:
        return None
    try:
        return fit_logistic(pred, truth)
    except AigiqaError:
        return None
