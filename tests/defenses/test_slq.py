"""``slq``: determinism and key dependence, the per-block quality map, vmap over keys."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.core.transform import bpda, build_transform
from tests.synthetic import synthetic_images

QUALITIES = (20, 40, 60, 80)


def smooth(n: int = 4, size=(32, 32), seed: int = 0, gray: bool = False) -> jax.Array:
    imgs = synthetic_images(n, size, seed)
    x = jnp.asarray(imgs, jnp.float32) / 255.0
    return x[..., :1] if gray else x


def test_same_key_same_output_other_key_other_output() -> None:
    t = build_transform("slq()")
    assert t.randomized
    x = smooth()
    a, b, c = t(x, jax.random.key(1)), t(x, jax.random.key(1)), t(x, jax.random.key(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == x.shape and a.dtype == jnp.float32 and 0 <= float(a.min()) and float(a.max()) <= 1


def test_single_quality_is_exactly_jpeg() -> None:
    x = smooth(3, (40, 24))
    assert np.array_equal(build_transform("slq(qualities=(35,))")(x, jax.random.key(0)),
                          build_transform("jpeg(quality=35)")(x, jax.random.key(0)))


def block_qualities(x: jax.Array, out: jax.Array, block: int = 8) -> np.ndarray:
    """For a grayscale image, the quality whose JPEG reproduces each output block (-1: none)."""
    refs = [np.asarray(build_transform(f"jpeg(quality={q})")(x, jax.random.key(0))) for q in QUALITIES]
    out = np.asarray(out)
    b, h, w, _ = out.shape
    found = -np.ones((b, h // block, w // block), int)
    for i in range(h // block):
        for j in range(w // block):
            sl = (slice(None), slice(i * block, (i + 1) * block), slice(j * block, (j + 1) * block))
            for k, ref in enumerate(refs):
                match = np.all(ref[sl] == out[sl], axis=(1, 2, 3)) & (found[:, i, j] < 0)
                found[match, i, j] = k
    return found


def test_every_block_is_jpeg_at_one_of_the_qualities() -> None:
    # grayscale blocks are coded independently: each SLQ block must equal that block of a
    # plain JPEG round trip at one of the qualities, and all qualities must occur
    x = smooth(4, (64, 64), seed=7, gray=True)
    found = block_qualities(x, build_transform("slq()")(x, jax.random.key(3)))
    assert (found >= 0).all()
    counts = np.bincount(found.ravel(), minlength=4)
    assert counts.min() >= 30, counts  # 256 blocks, uniform over 4 qualities: ~64 each


def test_block_parameter_groups_blocks() -> None:
    x = smooth(2, (64, 64), seed=8, gray=True)
    found = block_qualities(x, build_transform("slq(block=16)")(x, jax.random.key(4)))
    assert (found >= 0).all()
    # each 16x16 square shares one draw; across squares the draws differ
    assert (found[:, ::2, ::2] == found[:, 1::2, 1::2]).all() and (found[:, ::2, ::2] == found[:, ::2, 1::2]).all()
    assert len(np.unique(found)) > 1


def test_vmap_over_keys_equals_separate_calls() -> None:
    t = build_transform("slq()")
    x = smooth(2)
    keys = jax.random.split(jax.random.key(5), 3)
    batched = jax.jit(jax.vmap(t.__call__, in_axes=(None, 0)))(x, keys)
    assert batched.shape == (3, *x.shape)
    for i in range(3):
        assert np.array_equal(batched[i], t(x, keys[i]))
    assert not np.array_equal(batched[0], batched[1])


def test_images_in_a_batch_get_different_maps() -> None:
    x = jnp.repeat(smooth(1, (64, 64), seed=9), 2, axis=0)
    out = build_transform("slq()")(x, jax.random.key(6))
    assert not np.array_equal(out[0], out[1])


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:4:4"])
def test_odd_sizes_and_jit(subsampling: str) -> None:
    t = build_transform(f"slq(subsampling='{subsampling}')")
    x = smooth(2, (33, 47))
    y = jax.jit(t.__call__)(x, jax.random.key(0))
    assert y.shape == x.shape and np.array_equal(y, t(x, jax.random.key(0)))


@pytest.mark.parametrize("surrogate", ["identity", "cubic"])
def test_bpda_gradient(surrogate: str) -> None:
    t = build_transform("slq()")
    assert surrogate in t.surrogates
    x = smooth(2)
    g = jax.grad(lambda z: jnp.sum(jnp.sin(5 * bpda(t, surrogate)(z, jax.random.key(0)))))(x)
    assert bool(jnp.isfinite(g).all()) and float(jnp.abs(g).mean()) > 1e-3
