"""What an attack attacks (``AttackTarget``) and what it returns (``AttackOutput``).

Every attack's ``run(target, x, y, key)`` receives an ``AttackTarget``: the differentiable,
EOT-averaged logits of the pipeline it crafts against, and the real decision of that
pipeline for one draw of its randomness. A bare model is a target with a key-free logits
function (``AttackTarget.of_model``); the runner builds the target of a defended classifier
with the attacker's chosen surrogate gradient (BPDA) and EOT sample count
(``bench.core.defense.DefendedClassifier.target``). Both functions are pure and safe under
``jit``, so a JAX attack can run its whole loop as one compiled ``lax`` loop and draw a fresh
key for every evaluation; Foolbox attacks see ``x -> logits`` with a fresh key per call
(``attacks.foolbox_adapter``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

Images = jax.Array  # float32 [B, H, W, C] in [0, 1]


@dataclasses.dataclass(frozen=True)
class AttackTarget:
    """The pipeline an attack crafts against.

    Attributes:
        logits: ``(x [B, H, W, C], key) -> [B, K]``: logits averaged over the EOT samples
            drawn from ``key`` (deterministic targets ignore it). The forward values are the
            real pipeline's; the gradient is the attacker's surrogate (BPDA).
        predict: ``(x, key) -> [B]`` int: the pipeline's decision for one draw of its
            randomness (a majority vote where the defense votes).
        randomized: whether either function depends on its key.
    """

    logits: Callable[[Images, jax.Array], jax.Array]
    predict: Callable[[Images, jax.Array], jax.Array]
    randomized: bool = False

    @staticmethod
    def of_model(logits_fn: Callable[[Images], jax.Array]) -> AttackTarget:
        """A deterministic target from a plain ``x -> logits`` function."""
        return AttackTarget(logits=lambda x, key: logits_fn(x),
                            predict=lambda x, key: jnp.argmax(logits_fn(x), axis=-1))


def as_target(target: AttackTarget | Callable[[Images], jax.Array]) -> AttackTarget:
    """``target`` itself, or a plain ``x -> logits`` function wrapped by ``AttackTarget.of_model``."""
    return target if isinstance(target, AttackTarget) else AttackTarget.of_model(target)


@dataclasses.dataclass(frozen=True)
class AttackOutput:
    """Adversarial examples of one batch.

    Attributes:
        x_adv: float32 ``[B, H, W, C]`` in [0, 1]; for minimum-norm attacks equal to the
            clean image where the attack failed.
        success: bool ``[B]``: the example fools the crafting target (for a randomized
            target: as judged by the attack on its own draws).
    """

    x_adv: jax.Array
    success: jax.Array
