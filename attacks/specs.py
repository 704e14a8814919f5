"""Attack specs: FGSM, I-FGSM, PGD, DeepFool-L2, Carlini-Wagner-L2, named by spec strings.

Each attack is a frozen dataclass registered under a short name (``pgd(eps=8, steps=40)``);
Linf budgets ``eps`` are in /255 (as in specs and reports) and have no default, so every
spec and result names its budget. The Foolbox attacks' ``run``
delegates to ``attacks.foolbox_adapter``, the only module that imports Foolbox; attacks
Foolbox lacks are written in JAX, one file each beside this one (``attacks.apgd``,
``attacks.square``), and override ``run``. Defaults follow Foolbox
3.3.4 except where noted: C&W runs 100 steps x 5 binary-search steps (Foolbox: 10,000 x 9,
hours on a CPU), and PGD's default is 40 steps.

References: FGSM (Goodfellow et al., ICLR 2015); I-FGSM / BIM (Kurakin et al., 2017);
PGD (Madry et al., ICLR 2018); DeepFool (Moosavi-Dezfooli et al., CVPR 2016);
C&W L2 (Carlini & Wagner, S&P 2017).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import jax

from attacks.target import AttackOutput, AttackTarget, as_target
from bench.core.registry import Registry, spec_of

ATTACKS: Registry[Attack] = Registry("attack", ("attacks.apgd", "attacks.square", "attacks.worst_case"))
register_attack = ATTACKS.register


@dataclasses.dataclass(frozen=True, repr=False)
class Attack:
    """Base class of attack specs.

    Class attributes:
        norm: ``"linf"`` or ``"l2"``.
        minimum_norm: True for attacks that search the smallest perturbation (no eps).
        gradient_free: True for attacks that only query the target's outputs (then the
            choice of surrogate gradient does not matter to them).
        spec_name: set by ``@register_attack``.
    """

    norm: ClassVar[str] = "linf"
    minimum_norm: ClassVar[bool] = False
    gradient_free: ClassVar[bool] = False
    spec_name: ClassVar[str] = "attack"

    def __repr__(self) -> str:
        return spec_of(self)

    def params(self) -> dict:
        return dataclasses.asdict(self)

    def run(self, target: AttackTarget | Callable[[jax.Array], jax.Array], x: jax.Array, y: jax.Array,
            key: jax.Array) -> AttackOutput:
        """Crafts adversarial examples of ``x`` ``[B, H, W, C]`` against ``target``.

        Args:
            target: an ``AttackTarget`` or a plain ``x -> logits`` function.
            x: float32 ``[B, H, W, C]`` in [0, 1].
            y: int ``[B]`` true labels.
            key: the attack's randomness (random starts, EOT samples).

        Returns:
            ``AttackOutput`` (Linf: the in-budget output; minimum norm: clean images where
            the attack failed).
        """
        from attacks.foolbox_adapter import run_attack

        return run_attack(self.spec_name, self.params(), as_target(target), x, y, key)


def positive(obj: Attack, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ValueError(f"{n} must be a positive number, got {v!r}")


def count(obj: Attack, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{n} must be a positive integer, got {v!r}")


@register_attack("fgsm")
@dataclasses.dataclass(frozen=True, repr=False)
class FGSM(Attack):
    """Fast gradient sign method, one step of size ``eps``/255."""

    eps: float

    def __post_init__(self) -> None:
        positive(self, "eps")


@register_attack("ifgsm")
@dataclasses.dataclass(frozen=True, repr=False)
class IFGSM(Attack):
    """Iterative FGSM (Foolbox's ``LinfBasicIterativeAttack``): ``steps`` steps of ``rel_stepsize * eps``."""

    eps: float
    steps: int = 10
    rel_stepsize: float = 0.2

    def __post_init__(self) -> None:
        positive(self, "eps", "rel_stepsize")
        count(self, "steps")


@register_attack("pgd")
@dataclasses.dataclass(frozen=True, repr=False)
class PGD(Attack):
    """Linf projected gradient descent (Foolbox's ``LinfPGD``), random start by default.

    ``rel_stepsize=None`` (the default) means ``2.5 / steps`` (Madry et al.'s rule: the steps
    can travel 2.5 eps in all), so short and long runs both reach the boundary of the ball;
    Foolbox's fixed default (1/30) is made for 40+ steps and lets 5 steps move only eps/6.
    """

    eps: float
    steps: int = 40
    rel_stepsize: float | None = None
    random_start: bool = True

    def __post_init__(self) -> None:
        positive(self, "eps")
        if self.rel_stepsize is not None:
            positive(self, "rel_stepsize")
        count(self, "steps")

    def params(self) -> dict:
        out = dataclasses.asdict(self)
        out["rel_stepsize"] = self.rel_stepsize if self.rel_stepsize is not None else 2.5 / self.steps
        return out


@register_attack("deepfool_l2")
@dataclasses.dataclass(frozen=True, repr=False)
class DeepFoolL2(Attack):
    """L2 DeepFool (minimum norm): linearise toward the nearest of ``candidates`` classes."""

    norm = "l2"
    minimum_norm = True
    steps: int = 50
    candidates: int = 10
    overshoot: float = 0.02

    def __post_init__(self) -> None:
        count(self, "steps", "candidates")
        positive(self, "overshoot")


@register_attack("cw_l2")
@dataclasses.dataclass(frozen=True, repr=False)
class CarliniWagnerL2(Attack):
    """Carlini-Wagner L2 (minimum norm), confidence kappa = ``confidence``."""

    norm = "l2"
    minimum_norm = True
    steps: int = 100
    binary_search_steps: int = 5
    confidence: float = 0.0
    stepsize: float = 0.01
    initial_const: float = 1e-3

    def __post_init__(self) -> None:
        count(self, "steps", "binary_search_steps")
        positive(self, "stepsize", "initial_const")
        if self.confidence < 0:
            raise ValueError(f"confidence must be >= 0, got {self.confidence}")


def build_attack(spec: str) -> Attack:
    """Builds an attack from its spec, e.g. ``build_attack("pgd(eps=8, steps=40)")``."""
    return ATTACKS.build(spec)
