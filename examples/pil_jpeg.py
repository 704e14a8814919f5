"""A host-code submission: JPEG through Pillow itself, as a defense author would write it.

Score it with ``shieldbench submit examples/pil_jpeg.py``. The function below is ordinary
NumPy + PIL code on a uint8 batch ``[B, H, W, 3]``; ``host_transform`` runs it through
``jax.pure_callback``, so the attacks, EOT and scoring treat it like any registered transform.
Its attacker's gradient is BPDA's identity (host code has none of its own).

It doubles as a cross-check: the built-in ``jpeg(quality=q)`` reproduces libjpeg bit for bit,
so ``pil_jpeg(quality=q)`` must score exactly like it wherever the attacker's surrogate is the
same (gray-box and transfer; ``tests/core/test_host.py`` checks it).
"""

import io

import numpy as np
from PIL import Image

from bench import host_transform


@host_transform("pil_jpeg", dtype="uint8", spec_fields=("quality",))
def pil_jpeg(x: np.ndarray, quality: int = 75) -> np.ndarray:
    """Pillow's JPEG save + load of every image (4:2:0 chroma, Pillow's default), uint8 in and out."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    out = np.empty_like(x)
    for i, img in enumerate(x):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality, subsampling=2)
        buf.seek(0)
        out[i] = np.asarray(Image.open(buf))
    return out
