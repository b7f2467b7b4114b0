"""Device and dtype options shared by every torch user (metrics, generation).

``device``: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``;
``dtype``: ``float32``, ``bfloat16`` or ``float16``. torch is imported inside functions only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aigiqa.errors import AigiqaError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["DTYPES", "is_device", "resolve_device", "check_bf16"]

DTYPES = ("float32", "bfloat16", "float16")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def is_device(choice: str) -> bool:
    """Whether ``choice`` is a device option this package accepts (syntax only)."""
    return bool(_DEVICE.match(str(choice)))


def resolve_device(choice: str, who: str,
                   error: type[AigiqaError] = AigiqaError) -> torch.device:
    """The torch device of an option (``auto`` resolved); ``error`` (message starting with
    ``who``) when it is not there on this machine."""
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(choice)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise error(f"{who}: device={choice} but no CUDA device is available; use "
                        "device=cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise error(f"{who}: device={choice} but this machine has "
                        f"{torch.cuda.device_count()} CUDA device(s)")
    return device


def check_bf16(device: torch.device, dtype: torch.dtype, who: str,
               error: type[AigiqaError] = AigiqaError) -> None:
    """``error`` if bfloat16 is asked on a CUDA device without it."""
    import torch

    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise error(f"{who}: dtype=bfloat16 but {device} does not support it; use float16 or "
                    "float32")
