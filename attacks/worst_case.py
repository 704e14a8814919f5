"""``worst_case(attacks=..., check=...)``: an AutoAttack-style ensemble scored per image.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020, §5: attacks run in order, each later one only on the
images that every earlier one left robust, and an image counts as robust only if it survives
all of them. This spec names the ensemble; its stages are full attack specs that share one
Linf budget. Gradient attacks run once per surrogate gradient the attacker can choose, and
gradient-free ones (``square``) once.

``check`` is a convergence check run last on the survivors, through every surrogate and with
twice the EOT samples for randomized defenses (e.g. APGD with twice the steps of the
ensemble's). Images it breaks count like any other stage's; that it broke more than a margin
is a sanity flag (``bench.eval.sanity``): the ensemble had not converged.

``escalate`` is what an evaluator does when the check breaks something: a much longer attack
(e.g. APGD-CE, 1,000 steps x 4 restarts) run on the survivors, round after round with fresh
random starts, for as long as the round before it (the check, then the previous round) broke at
least one image, and at most ``rounds`` rounds, with the check's EOT samples. The benchmark
escalates per surrogate (``bench.eval.adaptive.escalates``): a round runs through a surrogate
while that surrogate's check or previous round broke an image (for a randomized defense, an
image that R fresh draws confirm broken: ``bench.eval.adaptive.confirmed_breaks``). A unit of
images whose check broke nothing never escalates, so a converged ensemble costs nothing more.
That the last allowed round still broke images is a sanity flag (``escalation``): the worst
case may still be too high.

``run`` here is the plain sequential version on one target (one surrogate, survivors judged by
``target.predict`` under one fresh draw); the benchmark's adaptive level runs the ensemble
through ``bench.eval.adaptive``, which adds the surrogates, the cache, and for randomized defenses
survivor selection under fresh scoring draws.

Departures from AutoAttack: the stages are the protocol's choice (``cifar10-standard-v2`` keeps the
v1 PGD-50 first, so the v2 worst case can only be lower), and the ensemble runs through every
declared surrogate of the defense, as BPDA evaluations must.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from attacks.specs import Attack, build_attack, register_attack
from attacks.target import AttackOutput, AttackTarget, as_target


@register_attack("worst_case")
@dataclasses.dataclass(frozen=True, repr=False)
class WorstCase(Attack):
    """Per-image worst case over ``attacks`` run in order on survivors, then ``check``.

    Attributes:
        attacks: Linf attack specs sharing one ``eps``.
        check: an optional attack spec (same ``eps``) run last as the convergence check.
        escalate: an optional attack spec (same ``eps``) run after the check while the check or
            the previous round broke an image; needs ``check``.
        rounds: at most this many escalation rounds.
    """

    attacks: tuple[str, ...]
    check: str | None = None
    escalate: str | None = None
    rounds: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.attacks, str) or not self.attacks:
            raise ValueError(f"attacks must be a non-empty tuple of attack specs, got {self.attacks!r}")
        object.__setattr__(self, "attacks", tuple(self.attacks))
        stages = [build_attack(s) for s in self.attacks]
        if self.check is not None:
            stages.append(build_attack(self.check))
        if self.escalate is not None:
            if self.check is None:
                raise ValueError("worst_case: escalate needs a check (it runs only where the check broke an image)")
            stages.append(build_attack(self.escalate))
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise ValueError(f"worst_case: rounds must be a positive integer, got {self.rounds!r}")
        for a in stages:
            if a.norm != "linf" or a.minimum_norm or isinstance(a, WorstCase):
                raise ValueError(f"worst_case stages must be fixed-budget Linf attacks, got {a!r}")
        budgets = {float(a.eps) for a in stages}
        if len(budgets) != 1:
            raise ValueError(f"worst_case stages must share one eps, got {sorted(budgets)}")

    @property
    def eps(self) -> float:
        """The shared Linf budget in /255."""
        return float(build_attack(self.attacks[0]).eps)

    def stages(self) -> list[Attack]:
        """The ensemble's attacks in order (without the check)."""
        return [build_attack(s) for s in self.attacks]

    def base(self) -> WorstCase:
        """The ensemble without its escalation: the stages every unit runs (their cache and keys)."""
        return WorstCase(self.attacks, self.check)

    def params(self) -> dict:
        out = {"attacks": list(self.attacks), "check": self.check, "eps": self.eps}
        if self.escalate is not None:
            out |= {"escalate": self.escalate, "rounds": self.rounds}
        return out

    def run(self, target: AttackTarget | Callable[[jax.Array], jax.Array], x: jax.Array, y: jax.Array,
            key: jax.Array) -> AttackOutput:
        """Runs the stages (and the check) in order on ``x`` ``[B, H, W, C]``, each on the survivors."""
        target = as_target(target)
        x = jnp.asarray(x, jnp.float32)
        x_adv, fooled = x, jnp.zeros(x.shape[:1], bool)
        stages = [*self.stages(), *([build_attack(self.check)] if self.check else [])]
        escalation = [build_attack(self.escalate)] * self.rounds if self.escalate else []
        for i, attack in enumerate(stages + escalation):
            alive = jnp.nonzero(~fooled)[0]
            if len(alive) == 0 or (i >= len(stages) and not broke):
                break
            out = attack.run(target, x[alive], y[alive], jax.random.fold_in(key, i))
            wrong = target.predict(out.x_adv, jax.random.fold_in(key, 1000 + i)) != y[alive]
            x_adv = x_adv.at[alive].set(out.x_adv)  # a survivor keeps the latest in-budget attempt
            fooled = fooled.at[alive].set(wrong)
            broke = bool(jnp.any(wrong))  # whether the next escalation round runs
        return AttackOutput(x_adv=x_adv, success=fooled)
