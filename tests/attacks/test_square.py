"""The JAX Square Attack (Linf): known answer on a linear model, budget, keys, no gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attacks import build_attack
from attacks.square import Square, halving_starts
from attacks.target import AttackTarget
from bench.core.registry import SpecError
from tests.attacks.test_attacks import linear_model

EPS = 8  # /255


@pytest.fixture(scope="module")
def batch():
    x = jax.random.uniform(jax.random.key(1), (8, 8, 8, 3))
    return x, jnp.argmax(linear_model()(x), -1)


@pytest.fixture(scope="module")
def binary():
    """A two-class linear model with margin ``x . d`` for label 0, and images whose clean margin
    is a chosen fraction of the best Linf reduction ``eps * |d|_1`` (no pixel near 0 or 1, so
    the optimum ``x - eps * sign(d)`` is inside [0, 1])."""
    d = jax.random.normal(jax.random.key(0), (8 * 8 * 3,)) * 0.7
    w = jnp.stack([d, jnp.zeros_like(d)], axis=1)
    model = lambda x: x.reshape(x.shape[0], -1) @ w  # noqa: E731
    best_drop = EPS / 255 * jnp.abs(d).sum()
    fractions = jnp.array([0.2, 0.35, 0.5, 0.65, 0.75, 1.05, 1.3, 2.0])  # < 1: the optimum flips it
    base = jax.random.uniform(jax.random.key(1), (8, 8 * 8 * 3), minval=0.3, maxval=0.7)
    x = base + ((fractions * best_drop - base @ d) / (d @ d))[:, None] * d
    assert 0.1 < float(x.min()) and float(x.max()) < 0.9
    return model, x.reshape(8, 8, 8, 3), jnp.zeros(8, jnp.int32), d


def test_reaches_the_linear_optimum(binary) -> None:
    model, x, y, d = binary
    optimum = x - EPS / 255 * jnp.sign(d).reshape(8, 8, 3)
    optimum_fools = np.asarray(model(optimum)[:, 0] < model(optimum)[:, 1])
    assert optimum_fools.tolist() == [True] * 5 + [False] * 3
    out = Square(eps=EPS, queries=500).run(model, x, y, jax.random.key(0))
    logits = model(out.x_adv)
    assert np.array_equal(np.asarray(out.success), np.asarray(logits[:, 0] < logits[:, 1]))
    assert np.array_equal(np.asarray(out.success), optimum_fools)


def test_respects_the_budget(batch) -> None:
    x, y = batch
    out = build_attack(f"square(eps={EPS})").run(linear_model(), x, y, jax.random.key(0))
    assert out.x_adv.shape == x.shape and out.x_adv.dtype == jnp.float32 and out.success.dtype == jnp.bool_
    assert float(jnp.abs(out.x_adv - x).max()) <= EPS / 255 + 1e-6
    assert 0.0 <= float(out.x_adv.min()) and float(out.x_adv.max()) <= 1.0
    pred = jnp.argmax(linear_model()(out.x_adv), -1)
    assert np.array_equal(np.asarray(out.success), np.asarray(pred != y))
    assert float(out.success.mean()) > 0.5  # 1000 queries: as many as 100 steps of white-box PGD here


def test_same_key_same_result(binary) -> None:
    model, x, y, _ = binary
    x, y = x[5:], y[5:]  # the optimum cannot flip these: never frozen, so every query moves them
    attack = Square(eps=EPS, queries=50)
    a, b, c = (attack.run(model, x, y, jax.random.key(k)) for k in (3, 3, 4))
    assert np.array_equal(a.x_adv, b.x_adv) and np.array_equal(a.success, b.success)
    assert not np.array_equal(a.x_adv, c.x_adv)


def test_never_differentiates(binary) -> None:
    model, x, y, _ = binary

    @jax.custom_vjp
    def logits(x: jax.Array) -> jax.Array:
        return model(x)

    def fwd(x: jax.Array):
        return model(x), None

    def bwd(res, g):
        raise AssertionError("Square asked for a gradient")

    logits.defvjp(fwd, bwd)
    with pytest.raises(AssertionError, match="gradient"):
        jax.grad(lambda x: logits(x).sum())(x)  # the trap works
    target = AttackTarget(logits=lambda x, key: logits(x), predict=lambda x, key: jnp.argmax(logits(x), -1))
    out = Square(eps=EPS, queries=500).run(target, x, y, jax.random.key(1))
    assert Square.gradient_free and out.success.tolist() == [True] * 5 + [False] * 3


def test_randomized_target(batch) -> None:
    x, y = batch
    model = linear_model()
    noisy = lambda x, key: model(x) + 0.3 * jax.random.normal(key, (x.shape[0], 10))  # noqa: E731
    target = AttackTarget(logits=noisy, predict=lambda x, key: jnp.argmax(noisy(x, key), -1), randomized=True)
    a = Square(eps=EPS, queries=100).run(target, x, y, jax.random.key(0))
    b = Square(eps=EPS, queries=100).run(target, x, y, jax.random.key(0))
    assert float(jnp.abs(a.x_adv - x).max()) <= EPS / 255 + 1e-6 and a.success.shape == (8,)
    assert 0.0 <= float(a.x_adv.min()) and float(a.x_adv.max()) <= 1.0
    assert np.array_equal(a.x_adv, b.x_adv)


def test_schedule_is_rescaled_to_the_budget() -> None:
    assert halving_starts(10000) == (11, 51, 201, 501, 1001, 2001, 4001, 6001, 8001)
    assert halving_starts(1000) == (2, 6, 21, 51, 101, 201, 401, 601, 801)


@pytest.mark.parametrize("spec", ["square(eps=0)", "square(eps=8, queries=0)", "square(eps=8, p_init=2)",
                                  "square(eps=8, queries=2.5)", "square()"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(SpecError):
        build_attack(spec)


def test_repr_round_trip() -> None:
    for spec in ["square(eps=8)", "square(eps=4, queries=5000, p_init=0.3)"]:
        assert repr(build_attack(spec)) == spec and build_attack(repr(build_attack(spec))) == build_attack(spec)


def test_host_loop_equals_the_compiled_loop(batch) -> None:
    # attacks.loop: on CPU the queries run from the host; the search must be the same
    from attacks.square import _compiled

    x, y = batch
    attack = build_attack(f"square(eps={EPS}, queries=60)")
    target = AttackTarget.of_model(linear_model())
    host = _compiled(attack, target, True)(x, y, jax.random.key(4))
    device = _compiled(attack, target, False)(x, y, jax.random.key(4))
    assert np.array_equal(np.asarray(host[0]), np.asarray(device[0]))
    np.testing.assert_allclose(np.asarray(host[1]), np.asarray(device[1]), rtol=1e-6)
