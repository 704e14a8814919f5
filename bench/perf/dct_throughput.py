"""Throughput of the JPEG-family transforms against libjpeg, measured in one run.

Run: ``python -m bench.perf.dct_throughput [--seconds 5]`` (needs the ``test`` extra for
simplejpeg). Prints images/second and the ratios the DCT issue sets as goals:

* ``jpeg`` vs simplejpeg (libjpeg-turbo, encode + decode per image) at 32x32, goal >= 1.0x;
* ``jpeg`` vs Pillow (save + load per image) at 224x224, goal >= 1.0x;
* ``slq`` cost relative to one ``jpeg``, goal <= 1.5x.

The references run one image at a time in Python, as a data pipeline calls them; ours run
jitted on batches (sizes printed), warm, on all local CPU threads, with both sides
measured back to back in the same process. Inputs are smooth random uint8 images.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from bench.core.timing import rate


def images(n: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, size // 4, size // 4, 3)).astype(np.uint8)
    return np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)


def pillow_fn(imgs: np.ndarray, quality: int) -> Callable[[], object]:
    from PIL import Image

    def run():
        for img in imgs:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=quality)
            buf.seek(0)
            np.asarray(Image.open(buf))
    return run


def simplejpeg_fn(imgs: np.ndarray, quality: int) -> Callable[[], object]:
    import simplejpeg

    def run():
        for img in imgs:
            simplejpeg.decode_jpeg(simplejpeg.encode_jpeg(np.ascontiguousarray(img), quality=quality,
                                                          colorsubsampling="420"))
    return run


def ours_fn(spec: str, imgs: np.ndarray) -> Callable[[], object]:
    from bench.core.transform import build_transform

    t = build_transform(spec)
    f = jax.jit(t.__call__)
    x = jnp.asarray(imgs, jnp.float32) / 255.0
    key = jax.random.key(0)
    return lambda: f(x, key)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="measuring time per entry")
    p.add_argument("--quality", type=int, default=75)
    args = p.parse_args()
    from tabulate import tabulate

    q, s = args.quality, args.seconds
    rows = []
    small, large = images(512, 32), images(32, 224)
    r = {
        "jpeg 32": rate(ours_fn(f"jpeg(quality={q})", small), len(small), s),
        "simplejpeg 32": rate(simplejpeg_fn(small[:128], q), 128, s),
        "pillow 32": rate(pillow_fn(small[:128], q), 128, s),
        "slq 32": rate(ours_fn("slq()", small), len(small), s),
        "jpeg 224": rate(ours_fn(f"jpeg(quality={q})", large), len(large), s),
        "pillow 224": rate(pillow_fn(large[:16], q), 16, s),
        "simplejpeg 224": rate(simplejpeg_fn(large[:16], q), 16, s),
        "slq 224": rate(ours_fn("slq()", large), len(large), s),
    }
    for name, v in r.items():
        what, size = name.split()
        batch = {"32": 512, "224": 32}[size] if what in ("jpeg", "slq") else 1
        rows.append([what, f"{size}x{size}", batch, f"{v:,.0f}"])
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}; quality {q}; {s:.0f} s per entry")
    print(tabulate(rows, headers=["transform", "size", "batch", "img/s"], tablefmt="github"))
    goals = [
        ("jpeg / simplejpeg at 32x32", r["jpeg 32"] / r["simplejpeg 32"], ">= 1.0"),
        ("jpeg / Pillow at 224x224", r["jpeg 224"] / r["pillow 224"], ">= 1.0"),
        ("slq cost / jpeg cost at 32x32", r["jpeg 32"] / r["slq 32"], "<= 1.5"),
        ("slq cost / jpeg cost at 224x224", r["jpeg 224"] / r["slq 224"], "<= 1.5"),
    ]
    print(tabulate([[g, f"{v:.2f}x", goal] for g, v, goal in goals], headers=["ratio", "measured", "goal"],
                   tablefmt="github"))


if __name__ == "__main__":
    main()
