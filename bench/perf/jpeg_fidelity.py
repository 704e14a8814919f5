"""Fidelity of ``jpeg(quality=q)`` to Pillow's save + load (libjpeg-turbo), per quality.

Run: ``python -m bench.perf.jpeg_fidelity [--n 1000]``. Prints the mean and the maximum
absolute difference in grey levels (0..255) between our output and Pillow's, on ``n`` real
CIFAR-10 test images and on scikit-image's 512x512 astronaut photograph (if installed), at
every quality in {10, 20, ..., 90, 95}. The issue's bounds: mean <= 0.5 (q >= 20), <= 1.0
(q = 10).
"""

from __future__ import annotations

import argparse
import io

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)


def pillow(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf))


def compare(imgs: np.ndarray, quality: int) -> tuple[float, int]:
    from bench.core.transform import build_transform

    f = jax.jit(build_transform(f"jpeg(quality={quality})").__call__)
    ours = np.concatenate([
        np.round(np.asarray(f(jnp.asarray(imgs[i : i + 250], jnp.float32) / 255.0, jax.random.key(0))) * 255)
        for i in range(0, len(imgs), 250)
    ])
    diff = np.abs(ours - np.stack([pillow(i, quality) for i in imgs]))
    return float(diff.mean()), int(diff.max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="number of CIFAR-10 test images")
    p.add_argument("--data", help="data location (default as for the CLI)")
    args = p.parse_args()
    import PIL
    from tabulate import tabulate

    from bench.core.data import load_dataset, subset_indices

    test = load_dataset("cifar10", "test", data=args.data)
    sets = {"CIFAR-10 test": test.images[subset_indices(len(test), args.n)]}
    try:
        import skimage.data

        sets["astronaut 512x512"] = skimage.data.astronaut()[None]
    except ImportError:
        pass
    rows = []
    for q in QUALITIES:
        row = [q]
        for imgs in sets.values():
            mad, mx = compare(imgs, q)
            row += [f"{mad:.4f}", mx]
        rows.append(row)
    headers = ["quality"] + [f"{name} {m}" for name in sets for m in ("mean", "max")]
    print(f"Pillow {PIL.__version__}; {args.n} CIFAR-10 test images; 4:2:0; grey levels 0..255")
    print(tabulate(rows, headers=headers, tablefmt="github"))


if __name__ == "__main__":
    main()
