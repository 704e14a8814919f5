"""Classic filters: ``median`` against scipy, ``bitdepth`` against feature squeezing's formula."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.core.registry import SpecError
from bench.core.transform import bpda, build_transform
from defenses.median import median_filter, median_views, select_median

KEY = jax.random.key(0)


def noise(shape, seed: int = 0) -> jax.Array:
    return jax.random.uniform(jax.random.key(seed), shape)


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("shape", [(2, 32, 32, 3), (1, 13, 9, 1)])
def test_median_equals_scipy(size: int, shape: tuple) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    x = noise(shape, seed=size)
    ref = ndimage.median_filter(np.asarray(x), size=(1, size, size, 1), mode="reflect")
    got = jax.jit(build_transform(f"median(size={size})").__call__)(x, KEY)
    assert got.shape == x.shape and got.dtype == jnp.float32
    assert np.array_equal(np.asarray(got), ref)


def test_median_positional_spec_and_repr() -> None:
    assert repr(build_transform("median(5)")) == "median(size=5)"
    assert repr(build_transform("median()")) == "median(size=3)"  # the defining field is always written


@pytest.mark.parametrize("bits", [1, 3, 5, 8])
def test_bitdepth_formula(bits: int) -> None:
    x = noise((2, 8, 8, 3), seed=bits)
    got = np.asarray(build_transform(f"bitdepth(bits={bits})")(x, KEY))
    levels = 2**bits - 1
    assert np.allclose(got, np.rint(np.asarray(x) * levels) / levels, atol=1e-7)
    assert len(np.unique(np.round(got * levels))) <= levels + 1


def test_bitdepth_8_bits_keeps_8bit_images() -> None:
    x = jnp.asarray(np.arange(256, dtype=np.float32).reshape(1, 16, 16, 1) / 255.0)
    assert np.allclose(build_transform("bitdepth(bits=8)")(x, KEY), x, atol=1e-7)


@pytest.mark.parametrize("spec", ["median(size=4)", "median(size=1)", "median(size=3.0)",
                                  "bitdepth(bits=0)", "bitdepth(bits=9)", "bitdepth(bits=True)"])
def test_bad_parameters(spec: str) -> None:
    with pytest.raises(SpecError, match=spec.split("(")[0]):
        build_transform(spec)


@pytest.mark.parametrize("spec", ["median(size=3)", "bitdepth(bits=4)"])
def test_deterministic_identity_surrogate(spec: str) -> None:
    t = build_transform(spec)
    assert not t.randomized
    x = noise((1, 8, 8, 3))
    assert np.array_equal(t(x, jax.random.key(1)), t(x, jax.random.key(2)))
    g = jax.grad(lambda z: jnp.sum(bpda(t)(z, KEY)))(x)
    assert np.allclose(g, 1.0)


@pytest.mark.parametrize(("weight", "iters"), [(0.05, 30), (0.2, 60)])
def test_tvd_matches_scikit_image(weight: float, iters: int) -> None:
    restoration = pytest.importorskip("skimage.restoration")
    x = noise((2, 24, 20, 3), seed=iters)
    ref = np.stack([restoration.denoise_tv_chambolle(np.asarray(i), weight=weight, eps=0, max_num_iter=iters,
                                                     channel_axis=-1) for i in x])
    got = np.asarray(jax.jit(build_transform(f"tvd(weight={weight}, iters={iters})").__call__)(x, KEY))
    assert np.abs(got - ref).mean() < 1e-3 and np.abs(got - ref).max() < 1e-5
    assert got.dtype == np.float32 and got.shape == x.shape and got.min() >= 0 and got.max() <= 1


def test_tvd_smooths_more_with_larger_weight() -> None:
    x = noise((1, 16, 16, 1))
    tv = lambda u: float(jnp.abs(jnp.diff(u, axis=1)).sum() + jnp.abs(jnp.diff(u, axis=2)).sum())  # noqa: E731
    a, b = (build_transform(f"tvd(weight={w}, iters=50)")(x, KEY) for w in (0.02, 0.2))
    assert tv(b) < tv(a) < tv(x)


def test_tvd_shield_weight_mapping() -> None:
    from defenses.tvd import shield_weight

    assert [shield_weight(w) for w in (10, 20, 40)] == [0.05, 0.025, 0.0125]


@pytest.mark.parametrize("spec", ["tvd(weight=-1)", "tvd(weight=0)", "tvd(iters=0)", "tvd(iters=2.5)"])
def test_tvd_bad_parameters(spec: str) -> None:
    with pytest.raises(SpecError, match="tvd"):
        build_transform(spec)


@pytest.mark.parametrize("m", [9, 25, 49])
def test_median_network_selects_the_median(m: int) -> None:
    from defenses.median import select_median

    vals = np.random.default_rng(m).random((m, 500)).astype(np.float32)
    vals[:, :10] = 0.5  # ties
    got = np.asarray(select_median([jnp.asarray(v) for v in vals]))
    assert np.array_equal(got, np.median(vals, axis=0))


def test_tvd_chunked_equals_whole_batch() -> None:
    from defenses.tvd import chambolle

    x = noise((3, 160, 200, 3))  # > 2^18 values per image pair: runs in chunks of one image
    got = build_transform("tvd(weight=0.1, iters=10)")(x, KEY)
    assert np.allclose(got, jnp.clip(chambolle(x, 0.1, 10), 0, 1), atol=1e-6)


def logits_loss(t, key=KEY, classes: int = 10):
    """A logits-like scalar of the transform's own output: log-softmax of a fixed linear map."""

    def loss(x: jax.Array) -> jax.Array:
        w = jax.random.normal(jax.random.key(5), (x[0].size, classes))
        return jnp.sum(jax.nn.log_softmax(t(x, key).reshape(len(x), -1) @ w)[:, 0])

    return loss


@pytest.mark.parametrize("image", ["random", "constant"])
def test_tvd_own_gradient_is_finite_and_nonzero(image: str) -> None:
    # jnp.sqrt at 0 (flat regions, the zero-padded border) used to make this NaN everywhere
    t = build_transform("tvd(weight=0.05)")
    assert t.surrogates == ("identity", "own")
    x = noise((2, 32, 32, 3)) if image == "random" else jnp.full((2, 32, 32, 3), 0.5)
    g = np.asarray(jax.grad(logits_loss(bpda(t, "own")))(x))
    assert np.isfinite(g).all() and np.abs(g).max() > 1e-4


def test_safe_norm_is_the_plain_norm_with_a_zero_derivative_at_the_origin() -> None:
    from defenses.tvd import safe_norm

    a = jnp.concatenate([noise((50,), 1) - 0.5, jnp.zeros(5), jnp.array([1e-30, 3.0])])
    b = jnp.concatenate([noise((50,), 2) - 0.5, jnp.zeros(5), jnp.array([0.0, 4.0])])
    assert np.array_equal(np.asarray(safe_norm(a, b)), np.asarray(jnp.sqrt(a**2 + b**2)))
    plain = jax.jit(lambda p, q: jnp.sqrt(p**2 + q**2))
    assert np.array_equal(np.asarray(jax.jit(safe_norm)(a, b)), np.asarray(plain(a, b)))
    ga, gb = jax.grad(lambda p, q: jnp.sum(safe_norm(p, q)), argnums=(0, 1))(a, b)
    assert np.isfinite(ga).all() and np.isfinite(gb).all()
    assert float(ga[50]) == 0.0 and float(gb[50]) == 0.0
    assert np.allclose([ga[-1], gb[-1]], [0.6, 0.8])
    assert np.allclose(ga[:50], a[:50] / jnp.sqrt(a[:50] ** 2 + b[:50] ** 2), rtol=1e-5)


def test_median_own_gradient_routes_to_the_median_pixels() -> None:
    t = build_transform("median(size=3)")
    assert t.surrogates == ("identity", "own")
    x = noise((1, 8, 8, 3))
    g = np.asarray(jax.grad(lambda z: jnp.sum(bpda(t, "own")(z, KEY)))(x))
    # every output pixel is one input pixel: the gradient counts how often each pixel is a median
    assert np.isfinite(g).all() and g.sum() == pytest.approx(x.size)
    assert np.array_equal(g, np.round(g)) and (g >= 0).all()


@pytest.mark.parametrize("size", [3, 5])
def test_median_custom_vjp_equals_the_networks_gradient_without_ties(size: int) -> None:
    x = noise((2, 9, 9, 3), seed=size)
    w = jax.random.normal(jax.random.key(size), x.shape)
    network = lambda z: select_median(median_views(z, size)[0])  # noqa: E731 (autodiff through min/max)
    g_net = jax.grad(lambda z: jnp.sum(w * network(z)))(x)
    g_own = jax.grad(lambda z: jnp.sum(w * median_filter(z, size)))(x)
    assert np.array_equal(network(x), median_filter(x, size))
    np.testing.assert_allclose(g_own, g_net, atol=1e-5)


def test_median_custom_vjp_splits_ties_evenly() -> None:
    x = jnp.zeros((1, 3, 3, 1)).at[0, 1, 1, 0].set(1.0)  # the centre's 3x3 window: eight 0s and one 1
    g = jax.grad(lambda z: median_filter(z, 3)[0, 1, 1, 0])(x)
    # the median 0 is held by the eight other pixels: 1/8 each, nothing to the centre
    np.testing.assert_allclose(np.asarray(g)[0, :, :, 0], np.where(np.eye(3)[1][:, None] * np.eye(3)[1], 0.0, 0.125))
    # an image of ties: the cotangents still sum to one per output pixel
    q = jnp.round(noise((1, 8, 8, 3)) * 3) / 3
    assert float(jax.grad(lambda z: jnp.sum(median_filter(z, 5)))(q).sum()) == pytest.approx(q.size, rel=1e-5)


@pytest.mark.parametrize("bits", [1, 3, 5])
def test_bitdepth_smooth_surrogate(bits: int) -> None:
    t = build_transform(f"bitdepth(bits={bits})")
    assert t.surrogates == ("identity", "smooth")
    x = noise((2, 16, 16, 3), seed=bits)
    real, smooth = t(x, KEY), t.approx(x, KEY, "smooth")
    levels = 2**bits - 1
    # within 1/8 of a level of the real output, four times closer than the identity's bound
    assert float(jnp.abs(smooth - real).max()) <= 0.125 / levels + 1e-6
    assert float(jnp.abs(smooth - real).mean()) < 0.5 * float(jnp.abs(x - real).mean())
    w = jax.random.normal(jax.random.key(3), x.shape)
    g = jax.grad(lambda z: jnp.sum(w * bpda(t, "smooth")(z, KEY)))(x)
    assert bool(jnp.isfinite(g).all()) and float(jnp.abs(g).mean()) > 1e-2
    assert np.array_equal(bpda(t, "smooth")(x, KEY), real)
