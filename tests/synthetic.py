"""Synthetic datasets in every supported format, for tests (``tests/conftest.py`` builds fixtures on them)."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.core.data import CIFAR10_CLASSES, default_data_dir

REAL_DATA = default_data_dir() / "cifar10-jpeg.tar.gz"


def synthetic_images(n: int, size: tuple[int, int] = (32, 32), seed: int = 0) -> np.ndarray:
    """Smooth random uint8 images ``[n, H, W, 3]`` (smooth so JPEG keeps them recognisable)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, size[0] // 4 + 1, size[1] // 4 + 1, 3)).astype(np.float32)
    up = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)[:, : size[0], : size[1]]
    return up.astype(np.uint8)


def encode(img: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    return buf.getvalue()


def write_image_folder(root: Path, classes=CIFAR10_CLASSES, per_class: int = 2, size=(32, 32),
                       fmt: str = "PNG") -> Path:
    """Writes ``root/<split>/<class>/<i>.png`` for both splits; returns ``root``."""
    ext = ".png" if fmt == "PNG" else ".jpg"
    for s, split in enumerate(("train", "test")):
        imgs = synthetic_images(per_class * len(classes), size, seed=s)
        for c, cls in enumerate(classes):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                (d / f"{i:04d}{ext}").write_bytes(encode(imgs[c * per_class + i], fmt))
    return root


def write_archive(folder: Path, archive: Path) -> Path:
    """Packs an image folder (``train/``, ``test/``) into a ``.tar.gz``."""
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(folder / split, arcname=f"data/{split}")
    return archive


def write_official(root: Path, per_batch: int = 20) -> Path:
    """Writes a tiny ``cifar-10-batches-py/`` in the official pickle format."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}))
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, per_batch)]}
        (d / name).write_bytes(pickle.dumps(batch))
    return d
