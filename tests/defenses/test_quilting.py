"""``quilting``: nearest-neighbour replacement, blending, randomness, the patch database."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.core.registry import SpecError
from bench.core.transform import bpda, build_transform
from defenses import quilting
from defenses.quilting import build_database, grid

SIZE = 64  # a db_size no real database uses: the fixture's synthetic one


@pytest.fixture
def synthetic_db():
    """A known database of 64 random 4x4x3 patches, injected in place of the real one."""
    db = np.random.default_rng(0).random((SIZE, 4 * 4 * 3)).astype(np.float32)
    quilting._DB[(4, SIZE, 0)] = db
    yield db
    quilting._DB.pop((4, SIZE, 0))


def test_k1_without_overlap_is_the_nearest_patch(synthetic_db: np.ndarray) -> None:
    x = jax.random.uniform(jax.random.key(0), (2, 8, 12, 3))
    out = np.asarray(build_transform(f"quilting(patch=4, overlap=0, k=1, db_size={SIZE})")(x, jax.random.key(1)))
    xs = np.asarray(x)
    for b in range(2):
        for i in range(0, 8, 4):
            for j in range(0, 12, 4):
                q = xs[b, i:i + 4, j:j + 4].reshape(-1)
                best = synthetic_db[np.argmin(((synthetic_db - q) ** 2).sum(1))]
                assert np.allclose(out[b, i:i + 4, j:j + 4].reshape(-1), best, atol=1e-6)


def test_draws_come_from_the_k_nearest(synthetic_db: np.ndarray) -> None:
    x = jax.random.uniform(jax.random.key(2), (1, 4, 4, 3))
    t = build_transform(f"quilting(patch=4, overlap=0, k=3, db_size={SIZE})")
    q = np.asarray(x).reshape(-1)
    top3 = np.argsort(((synthetic_db - q) ** 2).sum(1))[:3]
    seen = set()
    for s in range(30):
        out = np.asarray(t(x, jax.random.key(s))).reshape(-1)
        match = [i for i in top3 if np.allclose(synthetic_db[i], out, atol=1e-6)]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == set(top3)


def test_overlaps_are_blended_averages(synthetic_db: np.ndarray) -> None:
    x = jax.random.uniform(jax.random.key(3), (1, 7, 7, 3))
    out = np.asarray(build_transform(f"quilting(patch=4, overlap=1, k=1, db_size={SIZE})")(x, jax.random.key(0)))
    assert list(grid(7, 4, 3)) == [0, 3]
    # pixel (3, 3) is covered by all four patches: it is the mean of their corner pixels
    xs = np.asarray(x)[0]
    corners = []
    for i in (0, 3):
        for j in (0, 3):
            q = xs[i:i + 4, j:j + 4].reshape(-1)
            best = synthetic_db[np.argmin(((synthetic_db - q) ** 2).sum(1))].reshape(4, 4, 3)
            corners.append(best[3 - i, 3 - j])
    assert np.allclose(out[0, 3, 3], np.mean(corners, axis=0), atol=1e-6)


def test_randomized_deterministic_per_key_and_vmappable(synthetic_db: np.ndarray) -> None:
    t = build_transform(f"quilting(patch=4, overlap=2, k=5, db_size={SIZE})")
    assert t.randomized
    x = jax.random.uniform(jax.random.key(4), (2, 9, 10, 3))
    a, b, c = t(x, jax.random.key(0)), t(x, jax.random.key(0)), t(x, jax.random.key(1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == x.shape and a.dtype == jnp.float32 and float(a.min()) >= 0 and float(a.max()) <= 1
    keys = jax.random.split(jax.random.key(9), 2)
    batched = jax.jit(jax.vmap(t.__call__, in_axes=(None, 0)))(x, keys)
    assert np.allclose(batched[1], t(x, keys[1]), atol=1e-6)


def test_scoring_draws_share_the_search_and_match_one_call_per_key(synthetic_db: np.ndarray) -> None:
    from bench.core.defense import DefendedClassifier, build_defense

    defense = build_defense(f"quilting(patch=4, overlap=2, k=5, db_size={SIZE})")
    w = jax.random.normal(jax.random.key(3), (8 * 8 * 3, 10))
    clf = DefendedClassifier(defense, {"resnet20": lambda x: x.reshape(len(x), -1) @ w})
    x = jax.random.uniform(jax.random.key(4), (6, 8, 8, 3))
    keys = jax.random.split(jax.random.key(5), 4)
    together = np.asarray(clf.predict_draws(x, keys))
    assert clf._vmap_draws is not None and together.shape == (4, 6)
    assert np.array_equal(together, np.stack([np.asarray(clf.predict(x, k)) for k in keys]))
    assert len({row.tobytes() for row in together}) > 1  # the draws differ: each used its own key


def test_database_first_loaded_inside_jit_serves_later_traces(tmp_path, monkeypatch) -> None:
    """The first use is usually inside a jitted attack; a second trace (another batch shape,
    or the EOT gradient after the scoring pass) must not see a tracer left by the first."""
    monkeypatch.setenv("SHIELDBENCH_CACHE", str(tmp_path))
    size = SIZE + 1  # a key no other test injects
    patches = np.random.default_rng(2).integers(0, 256, (size, 4, 4, 3), dtype=np.uint8)
    path = quilting.db_path(4, size)
    path.parent.mkdir(parents=True)
    np.savez(path, patches=patches)
    monkeypatch.setattr(quilting, "_DB", {})
    t = build_transform(f"quilting(patch=4, overlap=2, k=3, db_size={size})")
    f = jax.jit(t.__call__)
    first = f(jnp.zeros((2, 8, 8, 3)), jax.random.key(0))
    again = f(jnp.zeros((3, 8, 8, 3)), jax.random.key(0))  # a new shape: traced again
    grad = jax.grad(lambda x: jnp.sum(jax.vmap(lambda k: bpda(t)(x, k))(jax.random.split(jax.random.key(1), 2))))
    assert first.shape == (2, 8, 8, 3) and again.shape == (3, 8, 8, 3)
    assert np.isfinite(np.asarray(jax.jit(grad)(jnp.zeros((2, 8, 8, 3))))).all()


def test_database_is_deterministic() -> None:
    imgs = np.random.default_rng(1).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    a, b = build_database(imgs, 5, 100, seed=0), build_database(imgs, 5, 100, seed=0)
    assert a.shape == (100, 5, 5, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, build_database(imgs, 5, 100, seed=1))
    # every patch is a crop of one of the images
    p = a[0]
    assert any((imgs[n, i:i + 5, j:j + 5] == p).all() for n in range(10) for i in range(28) for j in range(28))


@pytest.mark.parametrize("spec", ["quilting(patch=1)", "quilting(overlap=5)", "quilting(k=0)",
                                  "quilting(k=30, db_size=20)", "quilting(patch=4.0)"])
def test_bad_parameters(spec: str) -> None:
    with pytest.raises(SpecError, match="quilting"):
        build_transform(spec)


def test_real_database_on_real_images(real_data, real_cache) -> None:
    from bench.core.data import load_dataset, subset_indices

    test = load_dataset("cifar10", "test", data=real_data)
    x = jnp.asarray(test.as_float(subset_indices(len(test), 4)))
    y = build_transform("quilting()")(x, jax.random.key(0))
    mad = float(jnp.abs(y - x).mean()) * 255
    assert y.shape == x.shape and 1.0 < mad < 40.0, mad  # changed, but still the same picture
