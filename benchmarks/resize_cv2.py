"""How far aigiqa's OpenCV-equivalent bicubic resize (MANIQA ``protocol=resize``) is from OpenCV.

OpenCV is not a dependency of aigiqa; run this where it is installed (or pass the folder holding
it): ``python benchmarks/resize_cv2.py [--cv2-path DIR] [IMAGE…]``. Prints, per input size, the
largest difference (grey levels) and the share of differing values against
``cv2.resize(image, (224, 224), interpolation=cv2.INTER_CUBIC)``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from aigiqa.images import load_image
from aigiqa.metrics.learned._blocks import resize_bicubic

SIZES = [(512, 384), (1024, 1024), (300, 500), (224, 224), (100, 150), (768, 1365)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cv2-path", help="folder to add to sys.path to import cv2")
    parser.add_argument("images", nargs="*", help="images to compare too (besides noise)")
    args = parser.parse_args()
    if args.cv2_path:
        sys.path.insert(0, args.cv2_path)
    import cv2

    rng = np.random.default_rng(0)
    inputs = [(f"noise {h}x{w}", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
              for h, w in SIZES]
    inputs += [(path, load_image(path)) for path in args.images]
    print(f"opencv {cv2.__version__}")
    for label, image in inputs:
        ref = cv2.resize(image, (224, 224), interpolation=cv2.INTER_CUBIC)
        diff = np.abs(resize_bicubic(image, 224, 224).astype(int) - ref.astype(int))
        print(f"{label}: max {diff.max()}, differing {(diff > 0).mean():.2e}")


if __name__ == "__main__":
    main()
