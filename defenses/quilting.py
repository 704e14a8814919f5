"""``quilting(patch, overlap, k, db_size)``: image quilting as a defense (randomized).

Guo, Rana, Cisse, van der Maaten, "Countering Adversarial Images using Input
Transformations", ICLR 2018, §3 (after Efros & Freeman 2001): the image is rebuilt from
clean patches. Every ``patch`` x ``patch`` window of the input (on a grid with stride
``patch - overlap``, the last row/column aligned to the border) is replaced by one of its
``k`` nearest neighbours (Euclidean, in pixel space) from a database of patches of clean
training images, chosen uniformly at random with the transform's key.

Departures from the paper, documented:

* Overlaps are **blended** (every output pixel is the mean of the patches covering it)
  instead of stitched along a minimum-error boundary cut (graph cut). Blending is jit- and
  vmap-friendly and keeps every output pixel a convex combination of clean pixels.
* The database holds ``db_size`` patches (default 20,000) sampled from the CIFAR-10
  training set with a fixed seed (paper: one million ImageNet patches); neighbours are
  searched exactly (the paper used approximate search).
* Patches are matched on all channels jointly (paper: the same).

The database is built by ``shieldbench quilting-db`` (or on first use, identically: it is a
deterministic function of the training set, the patch size, ``db_size`` and the seed) and
cached atomically under ``<cache>/quilting/`` with its provenance.

Surrogates offered to the attacker: ``"identity"`` only (BPDA's straight-through gradient,
as Athalye et al. 2018): the output is a blend of database patches, so its own gradient
with respect to the input is zero. Adaptive attacks use EOT over keys.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bench.transform import Images, Transform, register_transform

_DB: dict[tuple, np.ndarray] = {}


def db_path(patch: int, size: int, seed: int = 0) -> Path:
    from bench.io import cache_root

    return cache_root() / "quilting" / f"cifar10-p{patch}-n{size}-s{seed}.npz"


def build_database(images: np.ndarray, patch: int, size: int, seed: int = 0) -> np.ndarray:
    """Samples ``size`` patches uint8 ``[size, patch, patch, C]`` from ``images`` deterministically."""
    rng = np.random.default_rng(seed)
    n, h, w, _ = images.shape
    idx = rng.integers(0, n, size)
    ys = rng.integers(0, h - patch + 1, size)
    xs = rng.integers(0, w - patch + 1, size)
    offsets = np.arange(patch)
    return images[idx[:, None, None], (ys[:, None] + offsets)[:, :, None], (xs[:, None] + offsets)[:, None, :]]


def write_database(patch: int, size: int, seed: int = 0, data: str | None = None) -> Path:
    """Builds the database from the CIFAR-10 training set and caches it atomically."""
    from bench.data import load_dataset
    from bench.io import atomic_write_bytes

    train = load_dataset("cifar10", "train", data=data)
    patches = build_database(train.images, patch, size, seed)
    meta = {"dataset": "cifar10", "split": "train", "source_sha256": train.source_sha256, "patch": patch,
            "size": size, "seed": seed, "command": f"shieldbench quilting-db --patch {patch} --size {size}"}
    buf = io.BytesIO()
    np.savez(buf, patches=patches, meta=np.array(json.dumps(meta)))
    path = db_path(patch, size, seed)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_database(patch: int, size: int, seed: int = 0) -> np.ndarray:
    """The database as float32 ``[size, patch * patch * C]`` in [0, 1] (built if missing).

    A NumPy array, converted in NumPy: the first call may come from inside a ``jit`` trace,
    where a ``jnp`` result would be a tracer that a later trace cannot use.
    """
    key = (patch, size, seed)
    if key not in _DB:
        path = db_path(patch, size, seed)
        try:
            with np.load(path, allow_pickle=False) as z:
                patches = z["patches"]
        except (OSError, ValueError, KeyError, EOFError):
            write_database(patch, size, seed)
            with np.load(path, allow_pickle=False) as z:
                patches = z["patches"]
        _DB[key] = patches.reshape(size, -1).astype(np.float32) / np.float32(255.0)
    return _DB[key]


def grid(length: int, patch: int, stride: int) -> np.ndarray:
    """Patch origins covering ``[0, length)`` with the given stride, the last one flush."""
    starts = list(range(0, max(length - patch, 0) + 1, stride))
    if starts[-1] + patch < length:
        starts.append(length - patch)
    return np.asarray(starts)


@register_transform("quilting")
@dataclasses.dataclass(frozen=True, repr=False)
class Quilting(Transform):
    """Image quilting with blended overlaps.

    Attributes:
        patch: patch side in pixels.
        overlap: pixels shared by neighbouring patches (stride = patch - overlap).
        k: neighbours to draw from.
        db_size: database size (patches from the CIFAR-10 training set).

    Surrogates: "identity" only (the inherited default).
    """

    randomized = True
    key_free_work = True  # the neighbour search: done once for all EOT samples and draws
    patch: int = 5
    overlap: int = 2
    k: int = 10
    db_size: int = 20000

    def __post_init__(self) -> None:
        for name in ("patch", "overlap", "k", "db_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"{name} must be an integer, got {v!r}")
        if self.patch < 2 or not 0 <= self.overlap < self.patch:
            raise ValueError(f"need patch >= 2 and 0 <= overlap < patch, got patch={self.patch}, overlap={self.overlap}")
        if not 1 <= self.k <= self.db_size:
            raise ValueError(f"need 1 <= k <= db_size, got k={self.k}, db_size={self.db_size}")

    def __call__(self, x: Images, key: jax.Array) -> Images:
        b, h, w, c = x.shape
        p = self.patch
        if h < p or w < p:
            raise ValueError(f"images {h}x{w} are smaller than the {p}x{p} patches")
        db_np = load_database(p, self.db_size)
        db = jnp.asarray(db_np)
        if db.shape[1] != p * p * c:
            raise ValueError(f"the patch database has {db.shape[1] // (p * p)} channels, images have {c}")
        ys, xs = grid(h, p, p - self.overlap), grid(w, p, p - self.overlap)
        offs = np.arange(p)
        rows = (ys[:, None, None, None] + offs[None, None, :, None])  # [Py, 1, p, 1]
        cols = (xs[None, :, None, None] + offs[None, None, None, :])  # [1, Px, 1, p]
        queries = x[:, rows, cols, :]  # [B, Py, Px, p, p, C]
        q = queries.reshape(-1, p * p * c)
        # squared distances up to the per-query constant |q|^2: |d|^2 - 2 q.d
        scores = 2.0 * q @ db.T - jnp.asarray(np.sum(db_np * db_np, axis=1))
        _, nearest = jax.lax.top_k(scores, self.k)  # [Q, k]
        pick = jax.random.randint(key, (q.shape[0], 1), 0, self.k)
        chosen = db[jnp.take_along_axis(nearest, pick, axis=1)[:, 0]]
        chosen = chosen.reshape(b, len(ys), len(xs), p, p, c)
        canvas = jnp.zeros((b, h, w, c), x.dtype).at[:, rows, cols, :].add(chosen)
        count = jnp.zeros((h, w), x.dtype).at[rows, cols].add(1.0)
        return canvas / count[None, :, :, None]
