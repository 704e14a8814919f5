"""APGD (``attacks.apgd``) on models with known answers: linear models, a small MLP."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attacks import build_attack
from attacks.apgd import _compiled, _run_fns, apgd_batch, ce_loss, checkpoints, dlr_loss, dlr_targeted_loss
from attacks.loop import compiled_step
from attacks.target import AttackTarget
from bench.core.registry import SpecError

EPS = 1.0  # /255


def linear(seed: int = 0, scale: float = 0.5):
    w = np.asarray(jax.random.normal(jax.random.key(seed), (8 * 8 * 3, 10))) * scale
    return w, (lambda x: (x.reshape(x.shape[0], -1) - 0.5) @ jnp.asarray(w))


def linear_optimum(w: np.ndarray, x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    """Bool ``[B]``: some class can beat ``y`` within Linf ``eps`` (the box [0, 1] inactive).

    For a linear model the best perturbation toward class j is ``-eps * sign(w_y - w_j)``, which
    lowers the margin ``(w_y - w_j) . x`` by ``eps * |w_y - w_j|_1``.
    """
    flat = x.reshape(len(x), -1)
    out = np.zeros(len(x), bool)
    for i in range(len(x)):
        d = w[:, y[i]][:, None] - w  # [D, 10]
        margins = (flat[i] - 0.5) @ d - eps * np.abs(d).sum(axis=0)
        margins[y[i]] = np.inf
        out[i] = margins.min() < 0
    return out


@pytest.fixture(scope="module")
def case():
    w, f = linear()
    # images near grey, so that x +- eps stays inside [0, 1]: the optimum above is exact
    x = 0.5 + 0.4 * (jax.random.uniform(jax.random.key(1), (24, 8, 8, 3)) - 0.5)
    y = np.asarray(jnp.argmax(f(x), -1))
    return w, f, np.asarray(x, np.float32), y


def test_checkpoints_follow_the_paper() -> None:
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (Croce & Hein 2020, §3.2)
    assert np.nonzero(checkpoints(100))[0].tolist() == [22, 41, 57, 70, 80, 87, 93, 99]


def test_dlr_is_invariant_to_shifting_and_scaling_the_logits() -> None:
    z = jax.random.normal(jax.random.key(0), (5, 10))
    y, t = jnp.arange(5), jnp.arange(5) + 1
    np.testing.assert_allclose(dlr_loss(z, y), dlr_loss(3.0 * z + 7.0, y), rtol=1e-5)
    np.testing.assert_allclose(dlr_targeted_loss(z, y, t), dlr_targeted_loss(3.0 * z + 7.0, y, t), rtol=1e-5)


@pytest.mark.parametrize("spec", ["apgd_t(eps=1, steps=30)", "apgd_ce(eps=1, steps=30)", "apgd_dlr(eps=1, steps=30)"])
def test_reaches_the_linear_optimum(spec: str, case) -> None:
    w, f, x, y = case
    best = linear_optimum(w, x, y, EPS / 255)
    assert 0 < best.sum() < len(best)  # both kinds of image are present
    out = build_attack(spec).run(f, x, y, jax.random.key(0))
    pred = np.asarray(jnp.argmax(f(out.x_adv), -1))
    assert np.array_equal(np.asarray(out.success), pred != y)  # the success mask is the truth
    if spec.startswith("apgd_t"):  # trying every target class finds exactly the flippable images
        assert np.array_equal(pred != y, best)
    else:  # an untargeted loss may aim at another class than the best runner-up: no false claims
        assert not np.any((pred != y) & ~best) and (pred != y).sum() > 0
    assert float(np.abs(np.asarray(out.x_adv) - x).max()) <= EPS / 255 + 1e-6
    assert out.x_adv.dtype == jnp.float32


def test_maximises_its_loss_at_least_as_well_as_pgd(case) -> None:
    # On a linear model the cross-entropy's maximum over the Linf ball is a vertex both reach;
    # APGD's best loss must be no lower than PGD's final iterate's.
    _, f, x, y = case
    loss = jax.jit(lambda xs, key: apgd_batch(AttackTarget.of_model(f), ce_loss, xs, jnp.asarray(y), jnp.asarray(y), key,
                                              EPS / 255, 30)[2])
    pgd = build_attack("pgd(eps=1, steps=30)").run(f, x, y, jax.random.key(0))
    pgd_loss = ce_loss(f(pgd.x_adv), jnp.asarray(y))
    assert float(jnp.min(loss(jnp.asarray(x), jax.random.key(0)) - pgd_loss)) >= -1e-4


def test_no_worse_than_pgd_on_a_small_mlp() -> None:
    k1, k2, k3 = jax.random.split(jax.random.key(5), 3)
    w1 = jax.random.normal(k1, (8 * 8 * 3, 64)) * 0.2
    w2 = jax.random.normal(k2, (64, 10))

    def mlp(x: jax.Array) -> jax.Array:
        return jnp.tanh(x.reshape(x.shape[0], -1) @ w1) @ w2

    x = jax.random.uniform(k3, (64, 8, 8, 3))
    y = jnp.argmax(mlp(x), -1)
    rates = {s: float(build_attack(s).run(mlp, x, y, jax.random.key(1)).success.mean())
             for s in ("pgd(eps=1, steps=20)", "apgd_ce(eps=1, steps=20)")}
    assert 0.0 < rates["pgd(eps=1, steps=20)"] < 1.0
    assert rates["apgd_ce(eps=1, steps=20)"] >= rates["pgd(eps=1, steps=20)"]


def test_box_key_and_one_compile(case) -> None:
    _, f, x, y = case
    target = AttackTarget.of_model(f)
    attack = build_attack("apgd_ce(eps=16, steps=5)")
    xs = np.clip(x * 4 - 1.5, 0, 1)  # many pixels at the box edges
    a = attack.run(target, xs, y, jax.random.key(3))
    misses = _compiled.cache_info().misses
    b = attack.run(target, xs, y, jax.random.key(3))
    c = attack.run(target, xs, y, jax.random.key(4))
    assert _compiled.cache_info().misses == misses  # the same (attack, target) compiles once
    assert np.array_equal(a.x_adv, b.x_adv) and not np.array_equal(a.x_adv, c.x_adv)
    assert float(a.x_adv.min()) >= 0.0 and float(a.x_adv.max()) <= 1.0
    assert float(jnp.abs(a.x_adv - xs).max()) <= 16 / 255 + 1e-6


def test_eot_target_gets_a_fresh_key_per_step(case) -> None:
    _, f, x, y = case
    traced, seen = [], []

    def noisy(z: jax.Array, key: jax.Array) -> jax.Array:
        traced.append(1)
        jax.debug.callback(lambda k: seen.append(tuple(np.asarray(k).ravel())), jax.random.key_data(key))
        return f(z) + 0.01 * jax.random.normal(key, (z.shape[0], 10))

    target = AttackTarget(noisy, lambda z, key: jnp.argmax(noisy(z, key), -1), randomized=True)
    out = build_attack("apgd_dlr(eps=1, steps=4)").run(target, x, y, jax.random.key(0))
    assert float(jnp.abs(out.x_adv - x).max()) <= 1 / 255 + 1e-6
    assert len(traced) == 1  # the model is traced once, inside the loop body
    assert len(seen) == 5 and len(set(seen)) == 5  # start + 4 steps, each with its own EOT key


@pytest.mark.parametrize("spec", ["apgd_ce(eps=0)", "apgd_ce(eps=8, steps=0)", "apgd_t(eps=8, n_targets=0)",
                                  "apgd_dlr(eps=8, restarts=1.5)", "apgd_ce()"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(SpecError):
        build_attack(spec)


def test_repr_round_trip() -> None:
    for spec in ["apgd_ce(eps=8)", "apgd_dlr(eps=4, steps=50)", "apgd_t(eps=8, n_targets=3)",
                 "apgd_ce(eps=8, restarts=2)"]:
        assert repr(build_attack(spec)) == spec and build_attack(repr(build_attack(spec))) == build_attack(spec)


def test_host_loop_equals_the_compiled_loop(case) -> None:
    # attacks.loop: on CPU the steps run from the host; the numbers must be those of one fori_loop
    _, f, x, y = case
    attack = build_attack("apgd_t(eps=1, steps=6, n_targets=2)")
    target = AttackTarget.of_model(f)
    host = _compiled(attack, target, True)(jnp.asarray(x), jnp.asarray(y), jax.random.key(2))
    device = _compiled(attack, target, False)(jnp.asarray(x), jnp.asarray(y), jax.random.key(2))
    np.testing.assert_allclose(np.asarray(host[0]), np.asarray(device[0]), atol=1e-6)
    assert np.array_equal(np.asarray(host[1]), np.asarray(device[1]))


def test_budgets_share_one_compiled_step_with_the_numbers_of_a_constant_budget(case) -> None:
    # eps and the checkpoint schedule are arguments of the step: APGD-CE at two budgets and step
    # counts compiles one step, and its examples are bit-identical to those of a step compiled
    # with the budget as a constant (how the first version ran; its cached examples stay valid)
    _, f, x, y = case
    target, key = AttackTarget.of_model(f), jax.random.key(7)
    x, y = jnp.asarray(x), jnp.asarray(y)
    init, step, finish = _run_fns(target, ce_loss)
    for eps, steps in [(1, 5), (3, 9)]:
        e, ckpt = eps / 255.0, checkpoints(steps)
        const_init = jax.jit(lambda z, k, e=e: init(z, k, e))  # a Python float: folded by XLA
        const_step = jax.jit(lambda j, s, z, t, u, e=e, ckpt=ckpt: step(j, s, z, t, u, e, jnp.asarray(ckpt)))
        s = const_init(x, jax.random.fold_in(key, 0))  # the first (only) restart's key
        for j in range(steps + 1):
            s = const_step(j, s, x, y, y)
        want = finish(s)
        got = build_attack(f"apgd_ce(eps={eps}, steps={steps})").run(target, x, y, key)
        assert np.array_equal(np.asarray(got.x_adv), np.asarray(want[0]))
        assert np.array_equal(np.asarray(got.success), np.asarray(want[1]))
    assert compiled_step(step)._cache_size() == 1  # one compile for both budgets
