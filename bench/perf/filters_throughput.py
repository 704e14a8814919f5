"""Throughput of the classic baselines against their reference implementations, one run.

Run: ``python -m bench.perf.filters_throughput [--seconds 3]`` (needs the ``test`` extra).
Goals of the baselines issue: ``median`` and ``tvd`` >= 5x their references (scipy's
``median_filter`` per image, scikit-image's ``denoise_tv_chambolle`` per image) at 32x32
and 224x224; ``quilting`` < 20 ms per 32x32 image. Ours run jitted on batches (sizes
printed), warm, on all local CPU threads; references one image at a time, as a data
pipeline calls them. TVD runs the same fixed number of iterations on both sides
(scikit-image with ``eps=0``).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from bench.core.timing import rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--tvd-iters", type=int, default=50)
    args = p.parse_args()
    from scipy import ndimage
    from skimage.restoration import denoise_tv_chambolle
    from tabulate import tabulate

    from bench.core.transform import build_transform

    s, it = args.seconds, args.tvd_iters
    rows = []
    for size, batch, ref_n in ((32, 256, 64), (224, 16, 4)):
        imgs = np.random.default_rng(0).random((batch, size, size, 3)).astype(np.float32)
        x = jnp.asarray(imgs)
        for spec, ref in (("median(size=3)", lambda im: ndimage.median_filter(im, size=(3, 3, 1), mode="reflect")),
                          ("median(size=5)", lambda im: ndimage.median_filter(im, size=(5, 5, 1), mode="reflect")),
                          (f"tvd(weight=0.05, iters={it})",
                           lambda im: denoise_tv_chambolle(im, weight=0.05, eps=0, max_num_iter=it, channel_axis=-1))):
            f = jax.jit(build_transform(spec).__call__)
            ours = rate(lambda: f(x, jax.random.key(0)), batch, s)
            theirs = rate(lambda: [ref(im) for im in imgs[:ref_n]], ref_n, s)
            rows.append([spec, f"{size}x{size}", batch, f"{ours:,.0f}", f"{theirs:,.0f}", f"{ours / theirs:.1f}x"])
        if size == 32:
            f = jax.jit(build_transform("quilting()").__call__)
            qrate = rate(lambda: f(x, jax.random.key(0)), batch, s)
            rows.append(["quilting()", "32x32", batch, f"{qrate:,.0f}", "", f"{1000 / qrate:.2f} ms/img"])
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}; {s:.0f} s per entry")
    print(tabulate(rows, headers=["transform", "size", "batch", "ours img/s", "reference img/s", "ratio"],
                   tablefmt="github"))


if __name__ == "__main__":
    main()
