"""Shared fixtures: isolated caches, tiny synthetic datasets in every supported format, and a
tiny learnable benchmark world (data, two trained ResNet-8s as a zoo, a protocol)."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.core.data import CIFAR10_CLASSES, default_data_dir

REAL_DATA = default_data_dir() / "cifar10-jpeg.tar.gz"


def pytest_configure(config: pytest.Config) -> None:
    """A persistent XLA compilation cache for the test session only: the runner tests build
    the same models, attacks and defenses in many small jitted closures, and re-tracing them
    is cheap while re-compiling is not. The xdist workers share the controller's cache, so what one
    worker compiled the other loads. (Test-only global config; the library sets none.)"""
    import os
    import tempfile

    import jax

    if "SHIELDBENCH_TEST_XLA_CACHE" not in os.environ:  # the controller (or a run without xdist)
        os.environ["SHIELDBENCH_TEST_XLA_CACHE"] = tempfile.mkdtemp(prefix="shieldbench-xla-")
    jax.config.update("jax_compilation_cache_dir", os.environ["SHIELDBENCH_TEST_XLA_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache directory, except for the decoded real data (shared)."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("SHIELDBENCH_CACHE", str(cache))
    monkeypatch.delenv("SHIELDBENCH_DATA", raising=False)
    return cache


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


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "folder")


@pytest.fixture
def real_data() -> Path:
    """The real CIFAR-10 archive beside the checkout (skips when absent)."""
    if not REAL_DATA.is_file():
        pytest.skip(f"real CIFAR-10 data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture
def real_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the user's real cache (decoding the real data once costs ~15 s)."""
    from bench.core.io import cache_root

    monkeypatch.delenv("SHIELDBENCH_CACHE")
    return cache_root()


def _write_world(root: Path) -> dict[str, Path]:
    mp = pytest.MonkeyPatch()
    mp.setenv("SHIELDBENCH_CACHE", str(root / "cache"))
    try:
        from bench_world import write_world

        return write_world(root)
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def world_files(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, Path]:
    """The tiny world, trained once per test session: under pytest-xdist the workers share one
    copy (the first to ask writes it under a lock, the others wait and read it; nothing writes
    into it afterwards), instead of each training the same two models (~30 s a worker)."""
    if worker_id == "master":  # no xdist
        return _write_world(tmp_path_factory.mktemp("world"))
    import fcntl

    shared = tmp_path_factory.getbasetemp().parent  # this session's folder, one for all workers
    root, done = shared / "world", shared / "world.done"
    with open(shared / "world.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                if root.exists():  # a worker that died while writing
                    import shutil

                    shutil.rmtree(root)
                root.mkdir()
                _write_world(root)
                done.touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return {"data": root / "data", "zoo": root / "zoo", "protocols": root / "protocols"}


@pytest.fixture
def world(world_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    from bench_world import use_world

    use_world(monkeypatch, world_files)
    return world_files
