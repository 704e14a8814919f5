"""``jpeg``: fidelity to libjpeg (through Pillow), geometry, idempotence, BPDA surrogates."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.core.data import load_dataset, subset_indices
from bench.core.transform import bpda, build_transform
from tests.synthetic import synthetic_images
from tests.defenses.jpeg_ref import pillow_batch, pillow_roundtrip, to_levels

KEY = jax.random.key(0)


def ours(spec: str, imgs: np.ndarray) -> np.ndarray:
    x = jnp.asarray(imgs, jnp.float32) / 255.0
    if x.ndim == 3:
        x = x[..., None]
    out = to_levels(jax.jit(build_transform(spec).__call__)(x, KEY))
    return out[..., 0] if imgs.ndim == 3 else out


def bound(quality: int) -> float:
    """The issue's bounds on the mean absolute difference (grey levels)."""
    return 1.0 if quality < 20 else 0.5


@pytest.fixture(scope="module")
def cifar_images() -> np.ndarray:
    from tests.synthetic import REAL_DATA

    if not REAL_DATA.is_file():
        pytest.skip("real CIFAR-10 data not found")
    return load_dataset("cifar10", "test", data=REAL_DATA).images[subset_indices(10000, 48)]


@pytest.mark.parametrize("quality", [10, 30, 50, 75, 95])
def test_matches_pillow_on_real_cifar10(cifar_images: np.ndarray, quality: int) -> None:
    diff = np.abs(ours(f"jpeg(quality={quality})", cifar_images) - pillow_batch(cifar_images, quality=quality))
    assert diff.mean() <= bound(quality), f"q{quality}: MAD {diff.mean():.3f}, max {diff.max()}"
    # stronger than the bound: our pipeline is libjpeg's integer arithmetic, bit for bit
    assert diff.max() == 0, f"q{quality}: MAD {diff.mean():.3f}, max {diff.max()}"


def test_matches_pillow_on_a_large_photograph() -> None:
    skdata = pytest.importorskip("skimage.data")
    photo = skdata.astronaut()  # 512 x 512 RGB, ships with scikit-image
    for quality in (20, 90):
        diff = np.abs(ours(f"jpeg(quality={quality})", photo[None])[0] - pillow_roundtrip(photo, quality))
        assert diff.mean() <= bound(quality) and diff.max() == 0, (quality, diff.mean(), diff.max())


@pytest.mark.parametrize(("h", "w"), [(33, 47), (7, 9), (16, 24)])
@pytest.mark.parametrize("subsampling", ["4:2:0", "4:4:4"])
def test_odd_sizes_pad_by_edge_replication_as_libjpeg(h: int, w: int, subsampling: str) -> None:
    imgs = synthetic_images(3, (h, w), seed=h * w)
    spec = f"jpeg(quality=35, subsampling='{subsampling}')"
    got = ours(spec, imgs)
    assert got.shape == imgs.shape
    assert np.array_equal(got, pillow_batch(imgs, quality=35, subsampling=subsampling))


def test_grayscale() -> None:
    imgs = synthetic_images(2, (24, 40), seed=5)[..., 0]
    assert np.array_equal(ours("jpeg(quality=60)", imgs), pillow_batch(imgs, quality=60))


def test_noise_images_match_too() -> None:
    # high-frequency content exercises clamping and large coefficients
    imgs = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    for q in (10, 95):
        diff = np.abs(ours(f"jpeg(quality={q})", imgs) - pillow_batch(imgs, quality=q))
        assert diff.mean() <= bound(q) and diff.max() == 0, (q, diff.mean(), diff.max())


def test_shape_dtype_range_and_jit_equals_eager() -> None:
    t = build_transform("jpeg(quality=25)")
    x = jax.random.uniform(jax.random.key(1), (3, 20, 28, 3))
    eager = t(x, KEY)
    jitted = jax.jit(t.__call__)(x, KEY)
    assert eager.shape == x.shape and eager.dtype == jnp.float32
    assert float(eager.min()) >= 0.0 and float(eager.max()) <= 1.0
    assert np.array_equal(eager, jitted)
    # outputs are 8-bit levels, as a decoded JPEG
    assert np.allclose(np.asarray(eager) * 255, np.round(np.asarray(eager) * 255), atol=1e-4)


@pytest.mark.parametrize("quality", [20, 50, 90])
def test_recompression_converges(cifar_images: np.ndarray, quality: int) -> None:
    # JPEG is not idempotent, but each further pass changes the image less; at low quality
    # the second pass is almost a fixed point (measured: q20 9.7 -> 0.02, q50 7.0 -> 0.05,
    # q90 1.47 -> 0.41 -> 0.22 grey levels)
    t = jax.jit(build_transform(f"jpeg(quality={quality})").__call__)
    xs = [jnp.asarray(cifar_images[:24], jnp.float32) / 255.0]
    for _ in range(3):
        xs.append(t(xs[-1], KEY))
    steps = [float(jnp.abs(b - a).mean()) * 255 for a, b in zip(xs, xs[1:])]
    assert steps[0] > steps[1] > steps[2] or steps[2] == 0.0, steps
    if quality <= 50:
        assert steps[1] < 0.02 * steps[0], steps


def test_q75_is_close_to_idempotent_on_the_q75_data(cifar_images: np.ndarray) -> None:
    # the shared CIFAR-10 copy was JPEG q75 4:2:0 once (shared/data/README.md)
    x = jnp.asarray(cifar_images, jnp.float32) / 255.0
    d75 = float(jnp.abs(build_transform("jpeg(quality=75)")(x, KEY) - x).mean()) * 255
    d50 = float(jnp.abs(build_transform("jpeg(quality=50)")(x, KEY) - x).mean()) * 255
    assert d75 < 1.0 < d50, (d75, d50)


@pytest.mark.parametrize("surrogate", ["identity", "cubic", "ste"])
def test_bpda_gradients_are_finite_and_nonzero(surrogate: str) -> None:
    t = build_transform("jpeg(quality=30)")
    assert t.surrogates == ("identity", "cubic", "ste")
    x = jax.random.uniform(jax.random.key(2), (2, 16, 16, 3))
    w = jax.random.normal(jax.random.key(3), x.shape)
    g = jax.grad(lambda z: jnp.sum(w * bpda(t, surrogate)(z, KEY)))(x)
    assert bool(jnp.isfinite(g).all()) and float(jnp.abs(g).mean()) > 1e-3
    if surrogate != "identity":
        # a differentiable JPEG is a better model of JPEG than the identity is
        real = t(x, KEY)
        assert float(jnp.abs(t.approx(x, KEY, surrogate) - real).mean()) < 0.5 * float(jnp.abs(x - real).mean())


def test_surrogate_is_not_a_parameter() -> None:
    from bench.core.registry import SpecError

    with pytest.raises(SpecError, match="surrogate"):
        build_transform("jpeg(quality=75, surrogate='cubic')")
    with pytest.raises(ValueError, match=r"jpeg\(quality=30\).*'magic'"):
        build_transform("jpeg(quality=30)").approx(jnp.zeros((1, 8, 8, 3)), KEY, "magic")


def test_jnp_round_would_pass_no_gradient() -> None:
    # why the surrogates exist (docs/design.md#defenses): plain rounding has zero gradient
    g = jax.grad(lambda z: jnp.sum(jnp.round(z * 10)))(jnp.linspace(0, 1, 5))
    assert float(jnp.abs(g).sum()) == 0.0
