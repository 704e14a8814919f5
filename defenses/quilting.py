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
* The database holds ``db_size`` patches (default 20,000) sampled with a fixed seed from the
  training split of the dataset being scored (``bench.core.data.training_data``: the runner sets it
  to its protocol's dataset, data location and crop; CIFAR-10's training set by default; paper:
  one million ImageNet patches); neighbours are searched exactly (the paper used approximate
  search), in chunks of queries so that the score matrix stays under ``SEARCH_ELEMENTS``
  values (a 224x224 image has 5,476 windows at the default stride: 438 MB of scores per image
  against 20,000 patches, unchunked).
* Patches are matched on all channels jointly (paper: the same).

The database is built by ``shieldbench quilting-db`` (or on first use, identically: it is a
deterministic function of the training set, the patch size, ``db_size`` and the seed) and
cached atomically under ``<cache>/quilting/`` with its provenance, named by the training
set: ``cifar10-p5-n20000-s0.npz``, or for an image folder its crop and a fingerprint of its
``train/`` directory (an image folder without ``train/`` cannot be quilted: the patches must
not come from the images being scored, whose clean pixels they would hand back).

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

from bench.core.data import TrainingData, training_data
from bench.core.transform import Images, Transform, register_transform

_DB: dict[tuple, np.ndarray] = {}
SEARCH_ELEMENTS = 1 << 29  # most query x patch scores computed at once (2 GiB of float32)


def db_path(patch: int, size: int, seed: int = 0, source: str = "cifar10") -> Path:
    """The cached database built from the training set named ``source`` (``TrainingData.tag``)."""
    from bench.core.io import cache_root

    return cache_root() / "quilting" / f"{source}-p{patch}-n{size}-s{seed}.npz"


def build_database(images: np.ndarray, patch: int, size: int, seed: int = 0) -> np.ndarray:
    """Samples ``size`` patches uint8 ``[size, patch, patch, C]`` from ``images`` ``[N, H, W, C]`` deterministically.

    Raises:
        ValueError: images smaller than the patches.
    """
    rng = np.random.default_rng(seed)
    n, h, w, _ = images.shape
    if h < patch or w < patch:
        raise ValueError(f"training images of {h}x{w} are smaller than the {patch}x{patch} patches")
    idx = rng.integers(0, n, size)
    ys = rng.integers(0, h - patch + 1, size)
    xs = rng.integers(0, w - patch + 1, size)
    offsets = np.arange(patch)
    return images[idx[:, None, None], (ys[:, None] + offsets)[:, :, None], (xs[:, None] + offsets)[:, None, :]]


def write_database(patch: int, size: int, seed: int = 0, data: str | None = None,
                   training: TrainingData | None = None) -> Path:
    """Builds the database from a training set and caches it atomically.

    Args:
        patch, size, seed: the patch side, number of patches and sampling seed.
        data: CIFAR-10's location (the CLI's ``--data``), when ``training`` is not given.
        training: the training set; default CIFAR-10 at ``data`` if given, else the current
            ``bench.core.data.training_data()``.

    Returns:
        The database file.

    Raises:
        DataError: the training split cannot be loaded (e.g. an image folder without ``train/``).
    """
    from bench.core.io import atomic_write_bytes

    if training is None:
        training = TrainingData("cifar10", data) if data is not None else training_data()
    train = training.load()
    patches = build_database(train.images, patch, size, seed)
    meta = {"dataset": training.name, "split": "train", "source_sha256": train.source_sha256, "patch": patch,
            "size": size, "seed": seed, "command": f"shieldbench quilting-db --patch {patch} --size {size}"}
    if training.image_size is not None:
        meta.update(image_size=training.image_size, resize=training.resize or training.image_size)
    buf = io.BytesIO()
    np.savez(buf, patches=patches, meta=np.array(json.dumps(meta)))
    path = db_path(patch, size, seed, training.tag())
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_database(patch: int, size: int, seed: int = 0) -> np.ndarray:
    """The database of the current training set (``bench.core.data.training_data``) as float32
    ``[size, patch * patch * C]`` in [0, 1] (built if missing).

    A NumPy array, converted in NumPy: the first call may come from inside a ``jit`` trace,
    where a ``jnp`` result would be a tracer that a later trace cannot use.
    """
    training = training_data()
    # CIFAR-10 keeps the key (patch, size, seed) its database always had
    key = (patch, size, seed) if training.name == "cifar10" else (patch, size, seed, training)
    if key not in _DB:
        path = db_path(patch, size, seed, training.tag())
        try:
            with np.load(path, allow_pickle=False) as z:
                patches = z["patches"]
        except (OSError, ValueError, KeyError, EOFError):
            path = write_database(patch, size, seed, training=training)
            with np.load(path, allow_pickle=False) as z:
                patches = z["patches"]
        _DB[key] = patches.reshape(size, -1).astype(np.float32) / np.float32(255.0)
    return _DB[key]


def nearest_patches(q: jax.Array, db: np.ndarray, k: int) -> jax.Array:
    """Indices ``[Q, k]`` of the ``k`` database patches nearest to each query (Euclidean).

    Args:
        q: float32 queries ``[Q, D]``.
        db: float32 database ``[N, D]`` (NumPy: its squared norms are constants).
        k: neighbours per query.

    The ``[Q, N]`` scores are computed in chunks of at most ``SEARCH_ELEMENTS`` values
    (``lax.map``); below that, in one piece (every CIFAR-10 batch up to 268 images, the
    protocols' 250 included: their scores are computed exactly as before the chunking).
    """
    db_j, db_sq = jnp.asarray(db), jnp.asarray(np.sum(db * db, axis=1))

    def search(rows: jax.Array) -> jax.Array:
        # squared distances up to the per-query constant |q|^2: |d|^2 - 2 q.d
        return jax.lax.top_k(2.0 * rows @ db_j.T - db_sq, k)[1]

    n = q.shape[0]
    chunk = max(1, SEARCH_ELEMENTS // db.shape[0])
    if n <= chunk:
        return search(q)
    m = -(-n // chunk)
    padded = jnp.pad(q, ((0, m * chunk - n), (0, 0)))
    return jax.lax.map(search, padded.reshape(m, chunk, q.shape[1])).reshape(m * chunk, k)[:n]


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
        db_size: database size (patches from the training split of the dataset being scored).

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
        if db_np.shape[1] != p * p * c:
            raise ValueError(f"the patch database has {db_np.shape[1] // (p * p)} channels, images have {c}")
        ys, xs = grid(h, p, p - self.overlap), grid(w, p, p - self.overlap)
        offs = np.arange(p)
        rows = (ys[:, None, None, None] + offs[None, None, :, None])  # [Py, 1, p, 1]
        cols = (xs[None, :, None, None] + offs[None, None, None, :])  # [1, Px, 1, p]
        queries = x[:, rows, cols, :]  # [B, Py, Px, p, p, C]
        q = queries.reshape(-1, p * p * c)
        nearest = nearest_patches(q, db_np, self.k)  # [Q, k]
        pick = jax.random.randint(key, (q.shape[0], 1), 0, self.k)
        chosen = jnp.asarray(db_np)[jnp.take_along_axis(nearest, pick, axis=1)[:, 0]]
        chosen = chosen.reshape(b, len(ys), len(xs), p, p, c)
        canvas = jnp.zeros((b, h, w, c), x.dtype).at[:, rows, cols, :].add(chosen)
        count = jnp.zeros((h, w), x.dtype).at[rows, cols].add(1.0)
        return canvas / count[None, :, :, None]
