"""Spec strings, the transform registry, and the BPDA wrapper."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.core.registry import SpecError, parse_spec
from bench.core.transform import TRANSFORMS, Identity, bpda, build_transform


def test_parse_spec_forms() -> None:
    assert parse_spec("jpeg(quality=75)") == ("jpeg", (), {"quality": 75})
    assert parse_spec(" slq((20, 40), block=16) ") == ("slq", ((20, 40),), {"block": 16})
    assert parse_spec("identity") == ("identity", (), {})
    assert parse_spec("fd(preset='code', s1=None)") == ("fd", (), {"preset": "code", "s1": None})


@pytest.mark.parametrize("spec", ["jpeg(", "jpeg(quality=__import__('os'))", "jpeg.x(1)", "1 + 2", "jpeg(**{'q': 1})"])
def test_malformed_specs_are_rejected(spec: str) -> None:
    with pytest.raises(SpecError, match="malformed spec"):
        build_transform(spec)


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(SpecError, match="unknown transform 'jpge'; did you mean jpeg"):
        build_transform("jpge(quality=75)")


@pytest.mark.parametrize("spec", ["jpeg(quality=0)", "jpeg(quality=101)", "jpeg(subsampling='4:1:1')",
                                  "jpeg(quality=75.5)", "jpeg(surrogate='magic')", "jpeg(qualty=75)",
                                  "slq(block=12)", "slq(qualities=())", "slq(qualities=(20, 0))",
                                  "fd(passes=3)", "fd(preset='mine')", "fd(s1=-1)", "fd(preset='code', n=4)",
                                  "slq(surrogate='cubic')", "fd(surrogate='ste')"])
def test_bad_arguments_name_the_spec(spec: str) -> None:
    with pytest.raises(SpecError, match=r"spec .*" + spec.split("(")[0]):
        build_transform(spec)


@pytest.mark.parametrize("spec", ["identity()", "jpeg(quality=75)", "jpeg(quality=20, subsampling='4:4:4')",
                                  "slq()", "slq(qualities=(30, 60), block=16)", "fd()",
                                  "fd(preset='code', passes=2)", "median(size=5)"])
def test_repr_is_the_canonical_spec(spec: str) -> None:
    t = build_transform(spec)
    assert build_transform(repr(t)) == t
    assert repr(t) == spec
    assert hash(t) == hash(build_transform(spec))


def test_registry_lists_builtins() -> None:
    assert {"identity", "jpeg", "slq", "fd"} <= set(TRANSFORMS.names())


def test_bpda_of_identity_is_the_plain_gradient() -> None:
    x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3))
    loss = lambda z: jnp.sum(jnp.sin(3 * z))  # noqa: E731
    g_plain = jax.grad(loss)(x)
    g_bpda = jax.grad(lambda z: loss(bpda(Identity())(z, jax.random.key(1))))(x)
    assert np.allclose(g_plain, g_bpda)


def test_bpda_uses_the_surrogate_gradient_and_the_real_forward() -> None:
    t = build_transform("jpeg(quality=10)")
    x = jax.random.uniform(jax.random.key(0), (1, 16, 16, 3))
    f = bpda(t)
    assert np.array_equal(f(x, jax.random.key(0)), t(x, jax.random.key(0)))
    # identity surrogate: d/dx sum(f(x)) == 1 everywhere, though JPEG itself is piecewise constant
    g = jax.grad(lambda z: jnp.sum(f(z, jax.random.key(0))))(x)
    assert np.allclose(g, 1.0)


def test_bpda_with_a_declared_surrogate_has_its_gradient_and_the_real_forward() -> None:
    t = build_transform("fd(preset='code')")  # the cheapest "cubic" surrogate: no colour conversion
    x = jax.random.uniform(jax.random.key(0), (1, 16, 16, 3))
    k = jax.random.key(0)
    f = bpda(t, "cubic")
    assert np.array_equal(f(x, k), t(x, k))
    g = jax.grad(lambda z: jnp.sum(jnp.sin(3 * f(z, k))))(x)
    y = t(x, k)  # the surrogate's VJP is taken at x with the cotangent of the real output
    _, vjp = jax.vjp(lambda z: t.approx(z, k, "cubic"), x)
    (expected,) = vjp(3 * jnp.cos(3 * y))
    assert np.allclose(g, expected) and not np.allclose(g, 3 * jnp.cos(3 * y))
    with pytest.raises(ValueError, match=r"fd\(preset='code'\).*'own'"):
        bpda(t, "own")
