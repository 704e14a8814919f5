"""TV minimization with pixel dropout: the ROF limit, fill-in, randomness, contract."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench import build_transform
from bench.core.registry import SpecError


def smooth_images(n: int = 2, size: int = 32) -> jax.Array:
    rng = np.random.default_rng(0)
    coarse = rng.uniform(0, 1, (n, size // 8, size // 8, 3))
    x = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2) + rng.normal(0, 0.05, (n, size, size, 3))
    return jnp.asarray(np.clip(x, 0, 1), jnp.float32)


def test_without_dropout_it_is_rof_as_scikit_image() -> None:
    skimage = pytest.importorskip("skimage.restoration")
    x = smooth_images()
    ours = np.asarray(build_transform("tvm(drop=0.0, weight=0.05, iters=400)")(x, jax.random.key(0)))
    ref = np.stack([skimage.denoise_tv_chambolle(np.asarray(im), weight=0.05, eps=1e-7, max_num_iter=2000,
                                                 channel_axis=-1) for im in x])
    assert np.mean(np.abs(ours - ref)) < 2e-3


def test_dropped_pixels_are_filled_from_the_kept_ones() -> None:
    x = jnp.full((1, 16, 16, 3), 0.3, jnp.float32)
    y = build_transform("tvm(drop=0.7, weight=0.05, iters=50)")(x, jax.random.key(1))
    np.testing.assert_allclose(np.asarray(y), 0.3, atol=1e-5)
    # a dropped pixel carries no information: changing it changes the output less than a kept one
    t = build_transform("tvm(drop=0.5, weight=0.05, iters=100)")
    key = jax.random.key(2)
    keep = np.asarray(jax.random.bernoulli(key, 0.5, (1, 1, 16, 16)))[0, 0]
    base = smooth_images(1, 16)
    out = np.asarray(t(base, key))
    dropped, kept = np.argwhere(~keep)[0], np.argwhere(keep)[0]
    moved = []
    for i, j in (dropped, kept):
        bumped = np.asarray(base).copy()
        bumped[0, i, j] = 1.0 - bumped[0, i, j]
        moved.append(np.abs(np.asarray(t(jnp.asarray(bumped), key)) - out).sum())
    assert moved[0] < 1e-6 < moved[1]


def test_randomness_shape_range_and_jit() -> None:
    t = build_transform("tvm()")
    assert t.randomized and repr(t) == "tvm(drop=0.5, weight=0.03)"
    x = smooth_images()
    a, b, c = t(x, jax.random.key(0)), t(x, jax.random.key(0)), t(x, jax.random.key(1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == x.shape and a.dtype == jnp.float32 and float(a.min()) >= 0 and float(a.max()) <= 1
    np.testing.assert_allclose(np.asarray(jax.jit(t.__call__)(x, jax.random.key(0))), np.asarray(a), atol=1e-6)


@pytest.mark.parametrize("spec", ["tvm(drop=1.0)", "tvm(drop=-0.1)", "tvm(weight=0)", "tvm(iters=0)"])
def test_bad_parameters(spec: str) -> None:
    with pytest.raises(SpecError):
        build_transform(spec)


@pytest.mark.parametrize("image", ["random", "constant"])
def test_own_gradient_is_finite_and_nonzero(image: str) -> None:
    # the dual field's norm is sqrt(0) at the start and where differences vanish: NaN before safe_norm
    from bench.core.transform import bpda

    t = build_transform("tvm()")
    assert t.surrogates == ("identity", "own")
    shape = (2, 32, 32, 3)
    x = jax.random.uniform(jax.random.key(0), shape) if image == "random" else jnp.full(shape, 0.5, jnp.float32)
    w = jax.random.normal(jax.random.key(5), (32 * 32 * 3, 10))

    def loss(z: jax.Array) -> jax.Array:  # logits-like: log-softmax of a fixed linear map
        return jnp.sum(jax.nn.log_softmax(bpda(t, "own")(z, jax.random.key(3)).reshape(2, -1) @ w)[:, 0])

    g = np.asarray(jax.grad(loss)(x))
    assert np.isfinite(g).all() and np.abs(g).max() > 1e-4
