"""Every registered transform's surrogates: declared, well-formed, and with a useful BPDA gradient.

Walks the whole transform registry (each transform with its default arguments) and every
surrogate it declares, as the adaptive attack does (``bench.core.transform``).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.core.transform import TRANSFORMS, bpda, build_transform

NAMES = sorted(TRANSFORMS.names())
CASES = [(name, s) for name in NAMES for s in build_transform(f"{name}()").surrogates]
SHAPE = (2, 32, 32, 3)
KEY = jax.random.key(0)


@pytest.fixture(autouse=True)
def _quilting_db(small_quilting_db: None) -> None:
    """No CIFAR-10 patch database is built for ``quilting()`` (``tests/conftest.py``)."""


def images() -> jax.Array:
    return jax.random.uniform(jax.random.key(1), SHAPE)


def test_the_walk_covers_the_builtins() -> None:
    assert {"identity", "jpeg", "slq", "fd", "median", "bitdepth", "tvd", "tvm", "quilting"} <= set(NAMES)
    assert ("tvd", "own") in CASES and ("bitdepth", "smooth") in CASES and ("jpeg", "cubic") in CASES


@pytest.mark.parametrize("name", NAMES)
def test_identity_is_declared_and_surrogates_are_distinct(name: str) -> None:
    surrogates = build_transform(f"{name}()").surrogates
    assert isinstance(surrogates, tuple) and "identity" in surrogates
    assert len(set(surrogates)) == len(surrogates)


@functools.cache
def outputs(name: str) -> dict[str, Any]:
    """For the default transform ``name``: its output ``"real"``, and per surrogate ``s`` the
    forward of ``bpda(t, s)`` and the gradient of ``sum(bpda(t, s)(x, KEY) * w)`` for a fixed
    random ``w``. One jit per transform: compiling the JPEG pipelines once is several times
    faster than running them op by op."""
    t = build_transform(f"{name}()")
    w = jax.random.normal(jax.random.key(2), SHAPE)

    def everything(x: jax.Array) -> dict[str, Any]:
        out: dict[str, Any] = {"real": t(x, KEY)}
        for s in t.surrogates:
            f = bpda(t, s)

            def loss(z: jax.Array, f=f) -> tuple[jax.Array, jax.Array]:
                y = f(z, KEY)
                return jnp.sum(y * w), y

            (_, y), g = jax.value_and_grad(loss, has_aux=True)(x)
            out[s] = {"forward": y, "grad": g}
        return out

    return jax.device_get(jax.jit(everything)(images()))


@pytest.mark.parametrize(("name", "surrogate"), CASES)
def test_surrogate_shape_forward_and_gradient(name: str, surrogate: str) -> None:
    t = build_transform(f"{name}()")
    x = images()
    a = jax.eval_shape(lambda z: t.approx(z, KEY, surrogate), x)
    assert a.shape == x.shape and a.dtype == x.dtype
    out = outputs(name)
    # the forward pass is exactly the transform's
    assert np.array_equal(out[surrogate]["forward"], out["real"])
    g = out[surrogate]["grad"]
    assert g.shape == x.shape
    assert np.isfinite(g).all(), f"{t.spec} / {surrogate}: {int((~np.isfinite(g)).sum())} non-finite gradients"
    assert np.any(g != 0), f"{t.spec} / {surrogate}: the gradient is zero everywhere"


@pytest.mark.parametrize("name", NAMES)
def test_an_undeclared_surrogate_is_refused_naming_the_transform(name: str) -> None:
    t = build_transform(f"{name}()")
    spec = re.escape(t.spec)
    with pytest.raises(ValueError, match=rf"{spec}.*'no-such-surrogate'"):
        t.approx(images(), KEY, "no-such-surrogate")
    with pytest.raises(ValueError, match=rf"{spec}.*'no-such-surrogate'"):
        bpda(t, "no-such-surrogate")
