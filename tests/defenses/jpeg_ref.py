"""Reference JPEG round trips through Pillow (libjpeg-turbo), for the fidelity tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

SUBSAMPLING = {"4:2:0": 2, "4:4:4": 0}


def pillow_roundtrip(img: np.ndarray, quality: int | None = None, subsampling: str = "4:2:0",
                     qtables: list | None = None) -> np.ndarray:
    """Pillow save + load of one uint8 image ``[H, W]`` or ``[H, W, 3]``."""
    buf = io.BytesIO()
    kwargs = {"subsampling": SUBSAMPLING[subsampling]} if img.ndim == 3 else {}
    if qtables is not None:
        kwargs["qtables"] = qtables
    else:
        kwargs["quality"] = quality
    Image.fromarray(img).save(buf, format="JPEG", **kwargs)
    buf.seek(0)
    return np.asarray(Image.open(buf))


def pillow_batch(imgs: np.ndarray, **kwargs) -> np.ndarray:
    return np.stack([pillow_roundtrip(i, **kwargs) for i in imgs])


def to_levels(y) -> np.ndarray:
    """float [0, 1] output -> uint8-comparable levels."""
    return np.round(np.asarray(y, np.float64) * 255.0)
