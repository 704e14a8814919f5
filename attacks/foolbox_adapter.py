"""The one module that imports Foolbox: attack specs -> Foolbox attacks on JAX models.

Foolbox 3.3.4 (Rauber et al., JOSS 2020) runs on JAX through eagerpy 0.30.0. Attacks are
named by spec strings (``pgd(eps=8, steps=40)``); Linf budgets are given in /255 in specs
and reports and converted here. Two Foolbox behaviours are handled once, here:

* success is read from Foolbox's success mask, never inferred from its output. For a
  minimum-norm attack that fails (C&W notably) Foolbox may return arbitrary (e.g.
  all-zero) images, so there the clean image is kept wherever the attack did not succeed.
  A fixed-budget Linf attack's output is always a valid, in-budget perturbation and is
  kept whether or not it fooled the *crafting* model: a transfer or gray-box example that
  misses its source model may still fool the defended one, and dropping it would inflate
  robust accuracy;
* Foolbox differentiates ``x -> logits``; the target's ``logits(x, key)`` gets a fresh key
  (``fold_in(key, call number)``) at every call, so a randomized target's EOT samples are
  new at every gradient evaluation, as EOT requires;
* eagerpy's JAX backend draws random numbers (PGD's random start) from a hidden module-level
  key that is fixed at import; it is re-seeded from the caller's key before every run, so
  the same key gives the same examples and different jobs get different starts.

``PointwiseAttack`` is not offered: eagerpy calls the removed ``jax.ops.index_update``.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import eagerpy as ep
import foolbox as fb
import jax
import jax.numpy as jnp
import numpy as np

from attacks.target import AttackOutput, AttackTarget


def _reseed_eagerpy(key: jax.Array) -> None:
    """Points eagerpy's hidden JAX PRNG key at ``key`` (see the module docstring)."""
    from eagerpy.tensor import jax as ep_jax

    raw = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    ep_jax.JAXTensor.key = jnp.asarray(raw, jnp.uint32).reshape(-1)[:2]  # a legacy uint32[2] key


def foolbox_attack(foolbox: str, kwargs: dict[str, Any], eps: float | None) -> tuple[fb.attacks.Attack, float | None]:
    """The Foolbox attack a spec declares (``Attack.foolbox``: a class of ``foolbox.attacks``, and its
    constructor's keyword arguments); returns it and the budget on [0, 1] (``None``: minimum norm)."""
    cls = getattr(fb.attacks, foolbox, None)
    if not isinstance(cls, type) or not issubclass(cls, fb.attacks.Attack):
        raise ValueError(f"foolbox.attacks has no attack class {foolbox!r}")
    return cls(**kwargs), None if eps is None else float(eps) / 255.0


def run_attack(
    foolbox: str,
    kwargs: dict[str, Any],
    eps: float | None,
    target: AttackTarget,
    x: jax.Array,
    y: jax.Array,
    key: jax.Array,
) -> AttackOutput:
    """Runs one attack on one batch.

    Args:
        foolbox, kwargs: the Foolbox attack class a spec declares and its constructor's arguments.
        eps: the Linf budget in /255, ``None`` for a minimum-norm attack.
        target: the crafting pipeline (a bare model, or a defense through its surrogate
            gradient with EOT).
        x: float32 ``[B, H, W, C]`` in [0, 1].
        y: int ``[B]`` true labels.
        key: PRNG key for random starts and the target's EOT samples.

    Returns:
        The adversarial batch (see ``AttackOutput``) and the success mask.
    """
    attack, eps = foolbox_attack(foolbox, kwargs, eps)
    calls, ekey = itertools.count(), jax.random.fold_in(key, 1)
    model = fb.JAXModel(lambda z: target.logits(z, jax.random.fold_in(ekey, next(calls))), bounds=(0.0, 1.0))
    _reseed_eagerpy(key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Foolbox warns about unbounded minimisation attacks
        _, clipped, success = attack(model, jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32), epsilons=eps)
    clipped = clipped.raw if isinstance(clipped, ep.Tensor) else clipped
    success = jnp.asarray(success.raw if isinstance(success, ep.Tensor) else success, bool)
    clipped = jnp.asarray(clipped, jnp.float32)
    x_adv = clipped if eps is not None else jnp.where(success[:, None, None, None], clipped, x)
    return AttackOutput(x_adv=x_adv, success=success)


def foolbox_versions() -> dict[str, str]:
    """Versions recorded with cached adversarial examples."""
    return {"foolbox": fb.__version__, "eagerpy": ep.__version__, "numpy": np.__version__}
