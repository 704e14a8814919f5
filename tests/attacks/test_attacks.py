"""Attack specs and the Foolbox adapter, on a tiny model and synthetic images."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attacks import build_attack
from bench.core.registry import SpecError


def linear_model(seed: int = 0):
    """A fixed linear classifier on 8x8x3 images: attacks on it succeed or fail predictably."""
    w = jax.random.normal(jax.random.key(seed), (8 * 8 * 3, 10)) * 0.5
    return lambda x: x.reshape(x.shape[0], -1) @ w


@pytest.fixture(scope="module")
def batch():
    x = jax.random.uniform(jax.random.key(1), (16, 8, 8, 3))
    return x, jnp.argmax(linear_model()(x), -1)


@pytest.mark.parametrize("spec", ["fgsm(eps=8)", "ifgsm(eps=8, steps=5)", "pgd(eps=8)",
                                  "worst_case(attacks=('fgsm(eps=8)',), check='pgd(eps=8, steps=2)', "
                                  "escalate='pgd(eps=8, steps=5)', rounds=2)"])
def test_linf_attacks_respect_the_budget_and_fool(spec: str, batch) -> None:
    x, y = batch
    out = build_attack(spec).run(linear_model(), x, y, jax.random.key(0))
    assert out.x_adv.shape == x.shape and out.x_adv.dtype == jnp.float32
    assert float(jnp.abs(out.x_adv - x).max()) <= 8 / 255 + 1e-6
    assert 0.0 <= float(out.x_adv.min()) and float(out.x_adv.max()) <= 1.0
    pred = jnp.argmax(linear_model()(out.x_adv), -1)
    # the success mask is the truth on the crafting model
    assert np.array_equal(np.asarray(out.success), np.asarray(pred != y))
    assert float(out.success.mean()) > 0.5


@pytest.mark.parametrize("spec", ["deepfool_l2(steps=20)", "cw_l2(steps=20, binary_search_steps=3)"])
def test_minimum_norm_attacks(spec: str, batch) -> None:
    x, y = batch
    out = build_attack(spec).run(linear_model(), x, y, jax.random.key(0))
    pred = jnp.argmax(linear_model()(out.x_adv), -1)
    assert np.array_equal(np.asarray(out.success), np.asarray(pred != y))
    # failed examples stay clean, whatever Foolbox returned for them
    failed = ~np.asarray(out.success)
    assert np.array_equal(np.asarray(out.x_adv)[failed], np.asarray(x)[failed])
    assert float(out.success.mean()) > 0.5


def test_failed_linf_attack_keeps_its_in_budget_output(batch) -> None:
    # an example that misses the crafting model is still a valid attack on another model
    x, y = batch
    out = build_attack("fgsm(eps=0.001)").run(linear_model(), x, y, jax.random.key(0))
    failed = ~np.asarray(out.success)
    delta = np.abs(np.asarray(out.x_adv) - np.asarray(x))[failed]
    assert failed.any() and delta.max() > 0 and delta.max() <= 0.001 / 255 + 1e-7


def test_random_start_follows_the_key(batch) -> None:
    x, y = batch
    pgd = build_attack("pgd(eps=8, steps=1)")
    a = pgd.run(linear_model(), x, y, jax.random.key(3)).x_adv
    b = pgd.run(linear_model(), x, y, jax.random.key(3)).x_adv
    c = pgd.run(linear_model(), x, y, jax.random.key(4)).x_adv
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("spec", ["fgsm(eps=0)", "pgd(eps=8, steps=0)", "ifgsm(eps=8, steps=2.5)", "cw_l2(confidence=-1)",
                                  "pgd(epsilon=8)", "pgd()", "pointwise()",
                                  "worst_case(attacks=('pgd(eps=8)',), escalate='apgd_ce(eps=8)')",  # no check
                                  "worst_case(attacks=('pgd(eps=8)',), check='pgd(eps=8)', escalate='pgd(eps=4)')",
                                  "worst_case(attacks=('pgd(eps=8)',), check='pgd(eps=8)', escalate='pgd(eps=8)', "
                                  "rounds=0)"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(SpecError):
        build_attack(spec)


def test_repr_round_trip() -> None:
    for spec in ["fgsm(eps=8)", "pgd(eps=4, steps=100)", "cw_l2(steps=50)", "deepfool_l2(candidates=5)",
                 "worst_case(attacks=('pgd(eps=8)',), check='pgd(eps=8)', escalate='apgd_ce(eps=8, restarts=4)')"]:
        assert repr(build_attack(spec)) == spec and build_attack(repr(build_attack(spec))) == build_attack(spec)


def test_a_new_attack_is_one_class_declaring_its_family_and_implementation(batch) -> None:
    """A Foolbox attack is a spec class naming its Foolbox class (no dispatch to edit elsewhere);
    the family base declares the budget and its validation."""
    import dataclasses

    from attacks.specs import ATTACKS, LinfAttack, register_attack

    @register_attack("test_linf_deepfool")
    @dataclasses.dataclass(frozen=True, repr=False)
    class LinfDeepFool(LinfAttack):
        foolbox = "LinfDeepFoolAttack"
        steps: int = 20

    try:
        a = build_attack("test_linf_deepfool(eps=8)")
        assert repr(a) == "test_linf_deepfool(eps=8)" and a.norm == "linf" and not a.minimum_norm
        assert a.foolbox_kwargs() == {"steps": 20}
        x, y = batch
        out = a.run(linear_model(), x, y, jax.random.key(0))
        assert float(jnp.abs(out.x_adv - x).max()) <= 8 / 255 + 1e-6 and float(out.success.mean()) > 0.5
        with pytest.raises(SpecError, match="eps must be a positive number"):
            build_attack("test_linf_deepfool(eps=-1)")
        with pytest.raises(SpecError, match="missing 1 required"):
            build_attack("test_linf_deepfool()")  # the family's budget has no default
        wrong = dataclasses.replace(a)
        object.__setattr__(wrong, "foolbox", "NoSuchAttack")
        with pytest.raises(ValueError, match="foolbox.attacks has no attack class 'NoSuchAttack'"):
            wrong.run(linear_model(), x, y, jax.random.key(0))
    finally:
        ATTACKS._entries.pop("test_linf_deepfool", None)
