"""Speed (and MATLAB agreement) of the classical metrics: NIQE, BRISQUE, PIQE.

Times aigiqa's numpy implementation per image at 512x512 and 1024x1024 on seeded synthetic
RGB images (1/f spectrum), and, when given the Python of a separate venv with pyiqa installed,
pyiqa's CPU implementation on the same pixels in the same run. pyiqa gets our LIVE parameter
files (converted for BRISQUE), so neither side downloads anything.

    python benchmarks/classical.py [--n 4] [--sizes 512,1024] [--pyiqa-python VENV/bin/python]
    python benchmarks/classical.py --calibration DIR   # DIR holds I03.bmp … I19.bmp (see below)
    python benchmarks/classical.py --throughput 200 [--workers 2]  # runner, 512x512 PNG files

``--calibration`` compares with published MATLAB values for the five images of pyiqa's
ResultsCalibra/dist_dir (github chaofengc/IQA-PyTorch, ResultsCalibra/results_official.csv:
MATLAB LIVE-release NIQE and BRISQUE, MATLAB's piqe). The images are not redistributed here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from aigiqa.metrics.registry import create_metric

METRICS = ("niqe", "brisque", "piqe")

#: MATLAB outputs published in chaofengc/IQA-PyTorch ResultsCalibra/results_official.csv.
MATLAB_REFERENCE = {
    "niqe": {"I03": 15.7536293917814, "I04": 3.65492152353770, "I06": 3.23547743716998,
             "I08": 3.18403333858339, "I19": 8.63519663862637},
    "brisque": {"I03": 94.6421, "I04": -0.107618, "I06": 0.992889, "I08": 5.35827,
                "I19": 72.2617},
    "piqe": {"I03": 100.00, "I04": 21.62, "I06": 35.86, "I08": 41.15, "I19": 76.95},
}

_PYIQA_SCRIPT = r"""
import json, sys, time
import numpy as np, torch
from pyiqa.archs.niqe_arch import NIQE
from pyiqa.archs.brisque_arch import BRISQUE
from pyiqa.archs.piqe_arch import PIQE
args = json.loads(sys.argv[1])
sv = torch.from_numpy(np.load(args["sv"])); coef = torch.from_numpy(np.load(args["coef"]))
torch.save((coef, sv), args["pth"])
models = {"niqe": NIQE(pretrained_model_path=args["niqe"]),
          "brisque": BRISQUE(pretrained_model_path=args["pth"]), "piqe": PIQE()}
out = {}
with torch.no_grad():
    for name, model in models.items():
        model.eval()
        for path in args["images"]:
            x = torch.from_numpy(np.load(path)).permute(2, 0, 1)[None].double() / 255
            model(x)  # warm-up
            t = time.perf_counter()
            s = float(model(x).reshape(-1)[0])
            out.setdefault(name, {})[path] = [time.perf_counter() - t, s]
print(json.dumps(out))
"""


def natural(seed: int, size: int) -> np.ndarray:
    """A seeded 1/f-spectrum RGB uint8 image (size, size, 3)."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.rfftfreq(size)[None, :] ** 2
    shape = (size, size // 2 + 1)
    spec = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / np.maximum(f, 1e-5) ** 0.9
    img = np.fft.irfft2(spec, s=(size, size))
    img = (img - img.min()) / (img.max() - img.min()) * 255
    rgb = np.stack([img, np.roll(img, 11, 1), img[::-1]], -1)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def time_ours(images: list[np.ndarray]) -> dict[str, list[tuple[float, float]]]:
    """(seconds, score) per image for each metric (after one warm-up call)."""
    out = {}
    for name in METRICS:
        metric = create_metric(name)
        metric.score(images[:1])
        runs = []
        for im in images:
            t = time.perf_counter()
            score = float(metric.score([im])[0])
            runs.append((time.perf_counter() - t, score))
        out[name] = runs
    return out


def time_pyiqa(
    python: str, images: list[np.ndarray], work: Path
) -> dict[str, list[tuple[float, float]]]:
    """(seconds, score) per image of pyiqa's CPU implementation, run by ``python``."""
    from aigiqa.assets import asset_path
    from aigiqa.metrics.classical.brisque import load_model

    model = load_model("live")
    np.save(work / "sv.npy", model.support)
    np.save(work / "coef.npy", model.coef)
    paths = []
    for i, im in enumerate(images):
        paths.append(str(work / f"img{i}.npy"))
        np.save(paths[-1], im)
    args = {
        "sv": str(work / "sv.npy"), "coef": str(work / "coef.npy"), "pth": str(work / "b.pth"),
        "niqe": str(asset_path("niqe/modelparameters.mat")), "images": paths,
    }
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [python, "-c", _PYIQA_SCRIPT, json.dumps(args)], capture_output=True, text=True, env=env
    )
    if proc.returncode:
        raise SystemExit(f"pyiqa run failed:\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return {name: [tuple(data[name][p]) for p in paths] for name in METRICS}


def speed(n: int, sizes: list[int], pyiqa_python: str | None) -> None:
    print(
        f"{'metric':8} {'size':>5} {'aigiqa ms':>10} {'pyiqa ms':>10} {'speed-up':>9} "
        f"{'max |score diff| vs pyiqa':>26}"
    )
    for size in sizes:
        images = [natural(seed, size) for seed in range(n)]
        ours = time_ours(images)
        theirs = None
        if pyiqa_python:
            with tempfile.TemporaryDirectory() as tmp:
                theirs = time_pyiqa(pyiqa_python, images, Path(tmp))
        for name in METRICS:
            a = 1000 * float(np.median([t for t, _ in ours[name]]))
            if theirs:
                b = 1000 * float(np.median([t for t, _ in theirs[name]]))
                diff = max(abs(x[1] - y[1]) for x, y in zip(ours[name], theirs[name], strict=True))
                print(f"{name:8} {size:>5} {a:>10.1f} {b:>10.1f} {b / a:>8.1f}x {diff:>26.4f}")
            else:
                print(f"{name:8} {size:>5} {a:>10.1f} {'-':>10} {'-':>9}")


def throughput(n: int, workers: int) -> None:
    """Score n 512x512 PNG files with the three metrics through the benchmark runner."""
    from PIL import Image

    from aigiqa.benchmark.runner import score_images

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(n):
            paths.append(Path(tmp) / f"{i:05d}.png")
            Image.fromarray(natural(1000 + i, 512)).save(paths[-1])
        t = time.perf_counter()
        score_images(paths, list(METRICS), workers=workers, progress=False)
        dt = time.perf_counter() - t
    print(
        f"{n} images x {len(METRICS)} metrics, {workers} workers: {dt:.1f} s "
        f"({1000 * dt / n:.1f} ms/image; 20,000 images: {20000 * dt / n / 60:.1f} min)"
    )


def calibration(folder: Path) -> None:
    from aigiqa.images import load_image

    print(f"{'metric':8} {'image':5} {'aigiqa':>12} {'MATLAB':>12} {'rel. diff':>10}")
    for name, ref in MATLAB_REFERENCE.items():
        metric = create_metric(name)
        for image, value in ref.items():
            ours = float(metric.score([load_image(folder / f"{image}.bmp")])[0])
            rel = (ours - value) / abs(value)
            print(f"{name:8} {image:5} {ours:12.6f} {value:12.6f} {100 * rel:+9.3f}%")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="images per size")
    parser.add_argument("--sizes", default="512,1024")
    parser.add_argument("--pyiqa-python", help="python of a venv with pyiqa (and torch)")
    parser.add_argument("--calibration", type=Path, help="folder with pyiqa's I03…I19.bmp")
    parser.add_argument("--throughput", type=int, help="score this many files via the runner")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.throughput:
        throughput(args.throughput, args.workers)
        return
    if args.calibration:
        calibration(args.calibration)
        return
    speed(args.n, [int(s) for s in args.sizes.split(",")], args.pyiqa_python)


if __name__ == "__main__":
    sys.exit(main())
