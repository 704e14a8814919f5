"""Shared fixtures: isolated caches, tiny synthetic datasets in every supported format, and a
tiny learnable benchmark world (data, two trained ResNet-8s as a zoo, a protocol)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.synthetic import REAL_DATA, write_image_folder


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


@pytest.fixture
def small_quilting_db(monkeypatch: pytest.MonkeyPatch) -> None:
    """A synthetic database of 64 patches for ``quilting()``'s defaults (as
    ``tests/defenses/test_quilting.py`` injects one), so that no CIFAR-10 database is built; the
    entry is removed afterwards."""
    import numpy as np

    from defenses import quilting

    q = quilting.Quilting()
    db = np.random.default_rng(0).random((64, q.patch * q.patch * 3)).astype(np.float32)
    monkeypatch.setitem(quilting._DB, (q.patch, q.db_size, 0), db)


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
        from tests.bench_world import write_world

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
    from tests.bench_world import use_world

    use_world(monkeypatch, world_files)
    return world_files
