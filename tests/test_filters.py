"""Classic filters: ``median`` against scipy, ``bitdepth`` against feature squeezing's formula."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.registry import SpecError
from bench.transform import bpda, build_transform

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
    assert repr(build_transform("median()")) == "median()"


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
