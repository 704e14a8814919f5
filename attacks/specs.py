"""Attack specs: FGSM, I-FGSM, PGD, DeepFool-L2, Carlini-Wagner-L2, named by spec strings.

Each attack is a frozen dataclass registered under a short name (``pgd(eps=8, steps=40)``),
derived from its family's base: :class:`LinfAttack` declares the Linf budget ``eps``, in /255
(as in specs and reports) and without a default, so every spec and result names its budget;
:class:`MinimumNormL2Attack` declares an L2 attack that searches the smallest perturbation.
An attack declares its implementation on the spec. A Foolbox attack names its class
(``foolbox = "LinfPGD"``) and its constructor's arguments (``foolbox_kwargs``), and the base
``run`` hands both to ``attacks.foolbox_adapter``, the only module that imports Foolbox. An
attack Foolbox lacks is written in JAX, one file beside this one (``attacks.apgd``,
``attacks.square``), and overrides ``run``; its module is named in :data:`ATTACKS`'s built-ins. Defaults follow Foolbox
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
        foolbox: the ``foolbox.attacks`` class that implements it (``None``: it overrides ``run``).
        spec_name: set by ``@register_attack``.
    """

    norm: ClassVar[str] = "linf"
    minimum_norm: ClassVar[bool] = False
    gradient_free: ClassVar[bool] = False
    foolbox: ClassVar[str | None] = None
    spec_name: ClassVar[str] = "attack"

    def __repr__(self) -> str:
        return spec_of(self)

    def params(self) -> dict:
        return dataclasses.asdict(self)

    def foolbox_kwargs(self) -> dict:
        """The Foolbox class's constructor arguments (default: every field but ``eps``)."""
        return {k: v for k, v in self.params().items() if k != "eps"}

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
        if self.foolbox is None:
            raise NotImplementedError(f"{type(self).__name__}: override run() or name a Foolbox attack class")
        from attacks.foolbox_adapter import run_attack

        return run_attack(self.foolbox, self.foolbox_kwargs(), getattr(self, "eps", None), as_target(target),
                          x, y, key)


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


@dataclasses.dataclass(frozen=True, repr=False)
class LinfAttack(Attack):
    """Base of fixed-budget Linf attacks: ``eps`` in /255, required and positive."""

    norm: ClassVar[str] = "linf"
    eps: float

    def __post_init__(self) -> None:
        positive(self, "eps")


@dataclasses.dataclass(frozen=True, repr=False)
class MinimumNormL2Attack(Attack):
    """Base of L2 attacks that search the smallest perturbation (no budget; scored at the
    protocol's L2 threshold)."""

    norm: ClassVar[str] = "l2"
    minimum_norm: ClassVar[bool] = True


@register_attack("fgsm")
@dataclasses.dataclass(frozen=True, repr=False)
class FGSM(LinfAttack):
    """Fast gradient sign method, one step of size ``eps``/255."""

    foolbox = "FGSM"

    def foolbox_kwargs(self) -> dict:
        return {"random_start": False}


@register_attack("ifgsm")
@dataclasses.dataclass(frozen=True, repr=False)
class IFGSM(LinfAttack):
    """Iterative FGSM (Foolbox's ``LinfBasicIterativeAttack``): ``steps`` steps of ``rel_stepsize * eps``."""

    foolbox = "LinfBasicIterativeAttack"
    steps: int = 10
    rel_stepsize: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "rel_stepsize")
        count(self, "steps")

    def foolbox_kwargs(self) -> dict:
        return {**super().foolbox_kwargs(), "random_start": False}


@register_attack("pgd")
@dataclasses.dataclass(frozen=True, repr=False)
class PGD(LinfAttack):
    """Linf projected gradient descent (Foolbox's ``LinfPGD``), random start by default.

    ``rel_stepsize=None`` (the default) means ``2.5 / steps`` (Madry et al.'s rule: the steps
    can travel 2.5 eps in all), so short and long runs both reach the boundary of the ball;
    Foolbox's fixed default (1/30) is made for 40+ steps and lets 5 steps move only eps/6.
    """

    foolbox = "LinfPGD"
    steps: int = 40
    rel_stepsize: float | None = None
    random_start: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rel_stepsize is not None:
            positive(self, "rel_stepsize")
        count(self, "steps")

    def params(self) -> dict:
        out = dataclasses.asdict(self)
        out["rel_stepsize"] = self.rel_stepsize if self.rel_stepsize is not None else 2.5 / self.steps
        return out


@register_attack("deepfool_l2")
@dataclasses.dataclass(frozen=True, repr=False)
class DeepFoolL2(MinimumNormL2Attack):
    """L2 DeepFool (minimum norm): linearise toward the nearest of ``candidates`` classes."""

    foolbox = "L2DeepFoolAttack"
    steps: int = 50
    candidates: int = 10
    overshoot: float = 0.02

    def __post_init__(self) -> None:
        count(self, "steps", "candidates")
        positive(self, "overshoot")


@register_attack("cw_l2")
@dataclasses.dataclass(frozen=True, repr=False)
class CarliniWagnerL2(MinimumNormL2Attack):
    """Carlini-Wagner L2 (minimum norm), confidence kappa = ``confidence``."""

    foolbox = "L2CarliniWagnerAttack"
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
