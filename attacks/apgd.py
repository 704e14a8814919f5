"""APGD: Auto-PGD with the cross-entropy, DLR and targeted DLR losses, in JAX.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020 (§3: APGD; §4: the DLR loss). Written here from the
paper; AutoAttack's PyTorch code was read to settle details, not copied. Foolbox has no APGD.

Per image, for ``steps`` iterations (one gradient each, plus one at the start):

* momentum step ``z = P(x_k + eta * sign(grad))``,
  ``x_{k+1} = P(x_k + alpha (z - x_k) + (1 - alpha)(x_k - x_{k-1}))`` with ``alpha = 0.75``
  (a plain step the first time); ``P`` projects onto the Linf ball and [0, 1];
* the step size starts at ``eta = 2 eps`` and is halved at a checkpoint when fewer than
  ``rho = 0.75`` of the steps since the last checkpoint raised the loss, or when neither the
  step size nor the best loss changed since then; a halving restarts from the best point;
* checkpoints at ``0.22 N``, then intervals shrinking by ``0.03 N`` down to ``0.06 N`` (the
  integer form of the paper's ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``);
* the best point seen is kept: the first example the target misclassifies, else the point
  of highest loss.

Losses (maximised): ``ce``, cross-entropy; ``dlr``, ``-(z_y - max_{i != y} z_i) /
(z_pi1 - z_pi3)``; targeted ``dlr`` for ``apgd_t``, ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``,
run once per target class ``t`` among the ``targets`` classes with the highest clean logits
(AutoAttack: 9). ``restarts`` random starts are all run; per image the best is kept.

BPDA and EOT are the target's (``attacks.target``): its ``logits(x, key)`` averages EOT samples
drawn from ``key``, and a fresh key is used at every iteration. An iteration is one pure step
function; ``attacks.loop`` runs the steps as one ``lax.fori_loop`` on accelerators and, on CPU,
as a host loop over the one compiled step (XLA:CPU runs convolutions ~4x slower inside a while
loop; measured figures there). Either way the model is traced once per (attack, target) and
compiled once per batch shape; the budget and the step schedule are arguments of the
compiled step, so the ensemble's APGD-CE at 8/255, at 4/255 and its 2x-steps check share one
compile per surrogate.

Departures: for a randomized target the loss is that of the EOT-averaged logits (AutoAttack
averages gradients over ``eot_iter`` calls); a restart runs on every image (a jitted batch
cannot shrink), and the best restart per image is kept.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from attacks.loop import fori, host_loop_default
from attacks.specs import LinfAttack, count, register_attack
from attacks.target import AttackOutput, AttackTarget, as_target

ALPHA = 0.75
RHO = 0.75


SHARED_STEPS = 256
"""Runs of up to this many steps share one compiled step (their checkpoint masks are padded to it)."""


def checkpoints(steps: int) -> np.ndarray:
    """Bool ``[max(steps, SHARED_STEPS) + 1]``: whether evaluation ``j`` ends an interval (False past ``steps``)."""
    first, shrink, least = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    out, at, length = np.zeros(max(steps, SHARED_STEPS) + 1, bool), 0, first
    while at + length <= steps:
        at += length
        out[at] = True
        length = max(length - shrink, least)
    return out


def ce_loss(logits: jax.Array, y: jax.Array, t: jax.Array | None = None) -> jax.Array:
    """Per-image cross-entropy ``[B]`` (``t`` unused)."""
    del t
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]


def dlr_loss(logits: jax.Array, y: jax.Array, t: jax.Array | None = None) -> jax.Array:
    """Per-image untargeted DLR loss ``[B]`` (Croce & Hein 2020, Eq. 4; ``t`` unused)."""
    del t
    top = jnp.sort(logits, axis=-1)[:, ::-1]
    zy = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    others = jnp.where(jax.nn.one_hot(y, logits.shape[-1], dtype=bool), -jnp.inf, logits)
    return -(zy - jnp.max(others, axis=-1)) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted_loss(logits: jax.Array, y: jax.Array, t: jax.Array) -> jax.Array:
    """Per-image targeted DLR loss ``[B]`` toward classes ``t`` ``[B]`` (Croce & Hein 2020, §4)."""
    top = jnp.sort(logits, axis=-1)[:, ::-1]
    zy = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    zt = jnp.take_along_axis(logits, t[:, None], axis=1)[:, 0]
    return -(zy - zt) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


LOSSES: dict[str, Callable[..., jax.Array]] = {"ce": ce_loss, "dlr": dlr_loss, "dlr_targeted": dlr_targeted_loss}


def _project(z: jax.Array, x: jax.Array, eps: float) -> jax.Array:
    return jnp.clip(jnp.clip(z, x - eps, x + eps), 0.0, 1.0)


@functools.lru_cache(maxsize=64)
def _run_fns(target: AttackTarget, loss: Callable[..., jax.Array]) -> tuple[Callable, Callable, Callable]:
    """``init(x, key, eps) -> state``, ``step(j, state, x, y, t, eps, ckpt) -> state`` and ``finish(state)``.

    Evaluation ``j`` (``steps + 1`` of them) evaluates the random start (``j = 0``), then a plain
    step (``j = 1``), then momentum steps; the model's forward and backward pass is in ``step``.
    The budget ``eps`` (a float32 scalar on [0, 1]) and the checkpoint mask ``ckpt``
    (``checkpoints(steps)``) are arguments, not constants, and the functions are made once per
    (target, loss): every APGD run on a target with one loss shares one compiled step, whatever
    its budget and (up to ``SHARED_STEPS``) its step count. The arithmetic is the same float32
    either way, so the examples are bit-identical to a step compiled per budget (tested).
    """

    def bc(a: jax.Array) -> jax.Array:
        return a[:, None, None, None]

    def init(x: jax.Array, key: jax.Array, eps: jax.Array) -> dict:
        k_start, k_loop = jax.random.split(key)
        r = jax.random.uniform(k_start, x.shape, x.dtype, -1.0, 1.0)
        # eps * r / max|r|, in the order XLA:CPU evaluates it when eps is a compile-time constant
        # (as in the first version, whose cached examples this keeps bit-identical)
        x0 = _project(x + r * (eps * (1.0 / jnp.max(jnp.abs(r), axis=(1, 2, 3), keepdims=True))), x, eps)
        b = x.shape[:1]
        return dict(x=x0, x_prev=x0, g=jnp.zeros_like(x), loss=jnp.zeros(b, x.dtype),
                    step=jnp.full(b, 2.0 * eps, x.dtype), x_best=x0, g_best=jnp.zeros_like(x),
                    best=jnp.full(b, -jnp.inf, x.dtype), fooled=jnp.zeros(b, bool), x_fooled=x0,
                    ups=jnp.zeros(b, jnp.int32), since=jnp.int32(0), step_ckpt=jnp.full(b, 2.0 * eps, x.dtype),
                    best_ckpt=jnp.full(b, -jnp.inf, x.dtype), key=k_loop)

    def step(j: jax.Array, s: dict, x: jax.Array, y: jax.Array, t: jax.Array, eps: jax.Array,
             ckpt: jax.Array) -> dict:
        def total(v: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
            logits = target.logits(v, jax.random.fold_in(s["key"], j))
            per = loss(logits, y, t)
            return jnp.sum(per), (per, jnp.argmax(logits, axis=-1) != y)

        z = _project(s["x"] + bc(s["step"]) * jnp.sign(s["g"]), x, eps)
        momentum = _project(s["x"] + ALPHA * (z - s["x"]) + (1.0 - ALPHA) * (s["x"] - s["x_prev"]), x, eps)
        x_new = jnp.where(j == 0, s["x"], jnp.where(j == 1, z, momentum))
        (_, (l_new, f_new)), g_new = jax.value_and_grad(total, has_aux=True)(x_new)
        improved = l_new > s["best"]
        x_best = jnp.where(bc(improved), x_new, s["x_best"])
        g_best = jnp.where(bc(improved), g_new, s["g_best"])
        best = jnp.maximum(l_new, s["best"])
        moved = j >= 1
        ups = s["ups"] + (moved & (l_new > s["loss"])).astype(jnp.int32)
        since = s["since"] + moved.astype(jnp.int32)
        at_ckpt = ckpt[j]
        reduce = at_ckpt & ((ups < RHO * since) | ((s["step_ckpt"] == s["step"]) & (s["best_ckpt"] >= best)))
        size = jnp.where(reduce, s["step"] / 2.0, s["step"])
        return dict(
            x=jnp.where(bc(reduce), x_best, x_new), x_prev=s["x"], g=jnp.where(bc(reduce), g_best, g_new),
            loss=l_new, step=size, x_best=x_best, g_best=g_best, best=best, fooled=s["fooled"] | f_new,
            x_fooled=jnp.where(bc(f_new & ~s["fooled"]), x_new, s["x_fooled"]), ups=jnp.where(at_ckpt, 0, ups),
            since=jnp.where(at_ckpt, 0, since), step_ckpt=jnp.where(at_ckpt, size, s["step_ckpt"]),
            best_ckpt=jnp.where(at_ckpt, best, s["best_ckpt"]), key=s["key"])

    def finish(s: dict) -> tuple[jax.Array, jax.Array, jax.Array]:
        return jnp.where(bc(s["fooled"]), s["x_fooled"], s["x_best"]), s["fooled"], s["best"]

    return init, step, finish


def apgd_batch(target: AttackTarget, loss: Callable[..., jax.Array], x: jax.Array, y: jax.Array,
               t: jax.Array, key: jax.Array, eps: float, steps: int, host: bool = False
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One APGD run: ``steps + 1`` evaluations (see ``_run_fns``).

    Args:
        target: the pipeline to attack.
        loss: ``(logits, y, t) -> [B]`` loss to maximise.
        x: float32 ``[B, H, W, C]`` clean images in [0, 1].
        y: int ``[B]`` labels.
        t: int ``[B]`` target classes (ignored by untargeted losses).
        key: randomness of the start and of the EOT samples.
        eps: Linf budget on [0, 1].
        steps: iterations.
        host: loop on the host over one compiled step (``attacks.loop``); else traceable.

    Returns:
        ``(x_adv [B, H, W, C], fooled [B] bool, best loss [B])``.
    """
    init, step, finish = _run_fns(target, loss)
    e, ckpt = jnp.float32(eps), jnp.asarray(checkpoints(steps))
    return finish(fori(step, 0, steps + 1, init(x, key, e), x, y, t, e, ckpt, host=host))


@functools.lru_cache(maxsize=64)
def _jitted_run_fns(target: AttackTarget, loss: Callable[..., jax.Array]) -> tuple[Callable, Callable, Callable]:
    """``_run_fns`` with ``init`` and ``finish`` jitted, once per (target, loss); ``step`` is
    jitted by ``attacks.loop`` (once per step function)."""
    init, step, finish = _run_fns(target, loss)
    return jax.jit(init), step, jax.jit(finish)


@functools.lru_cache(maxsize=64)
def _compiled(attack: APGD, target: AttackTarget, host: bool) -> Callable:
    """The run of ``attack`` on ``target``: every (target class, restart), the best kept per image.

    Made once per (attack, target, loop kind); each run's loop compiles once per batch shape
    (``attacks.loop``: a host loop over one compiled step on CPU, one ``fori_loop`` elsewhere).
    """
    loss = LOSSES["dlr_targeted" if attack.targeted else attack.loss]
    eps, ckpt, n = jnp.float32(attack.eps / 255.0), jnp.asarray(checkpoints(attack.steps)), attack.steps + 1
    if host:
        init, step, finish = _jitted_run_fns(target, loss)

        def one(x: jax.Array, y: jax.Array, t: jax.Array, key: jax.Array) -> tuple[jax.Array, ...]:
            return finish(fori(step, 0, n, init(x, key, eps), x, y, t, eps, ckpt, host=True))
    else:
        init, step, finish = _run_fns(target, loss)
        one = jax.jit(lambda x, y, t, key: finish(fori(step, 0, n, init(x, key, eps), x, y, t, eps, ckpt, host=False)))

    @jax.jit
    def goals(x: jax.Array, y: jax.Array, key: jax.Array) -> jax.Array:
        if not attack.targeted:
            return jnp.repeat(y[None], attack.restarts, axis=0)
        clean = target.logits(x, jax.random.fold_in(key, 2**20))
        ranked = jnp.argsort(-jnp.where(jax.nn.one_hot(y, clean.shape[-1], dtype=bool), -jnp.inf, clean), axis=-1)
        return jnp.repeat(ranked[:, : min(attack.n_targets, clean.shape[-1] - 1)].T, attack.restarts, axis=0)

    @jax.jit
    def keep(best: tuple[jax.Array, ...], new: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
        (bx, bf, bl), (xa, fooled, lo) = best, new
        # a fooling example beats any other; among the rest the higher loss wins
        take = (fooled & ~bf) | ((fooled == bf) & (lo > bl) & ~bf)
        return jnp.where(take[:, None, None, None], xa, bx), bf | fooled, jnp.where(take, lo, bl)

    def run(x: jax.Array, y: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        best = (x, jnp.zeros(x.shape[:1], bool), jnp.full(x.shape[:1], -jnp.inf, x.dtype))
        for i, goal in enumerate(goals(x, y, key)):
            best = keep(best, one(x, y, goal, jax.random.fold_in(key, i)))
        return best[0], best[1]

    return run


@dataclasses.dataclass(frozen=True, repr=False)
class APGD(LinfAttack):
    """Auto-PGD in Linf (see the module docstring); subclasses fix the loss.

    Attributes:
        eps: Linf budget in /255.
        steps: iterations per run.
        restarts: random starts (all run; the best per image is kept).
    """

    loss: ClassVar[str] = "ce"
    targeted: ClassVar[bool] = False

    steps: int = 100
    restarts: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        count(self, "steps", "restarts")

    @property
    def runs(self) -> int:
        """APGD runs per image: targets x restarts."""
        return (self.n_targets if self.targeted else 1) * self.restarts

    @property
    def gradients(self) -> int:
        """Gradient evaluations per image."""
        return self.runs * (self.steps + 1)

    def run(self, target: AttackTarget | Callable[[jax.Array], jax.Array], x: jax.Array, y: jax.Array,
            key: jax.Array) -> AttackOutput:
        """Runs APGD on ``x`` ``[B, H, W, C]`` with labels ``y`` ``[B]`` (see ``Attack.run``)."""
        run = _compiled(self, as_target(target), host_loop_default())
        x_adv, fooled = run(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32), key)
        return AttackOutput(x_adv=x_adv.astype(jnp.float32), success=fooled)


@register_attack("apgd_ce")
@dataclasses.dataclass(frozen=True, repr=False)
class APGDCE(APGD):
    """APGD on the cross-entropy loss (AutoAttack's APGD-CE)."""

    loss = "ce"


@register_attack("apgd_dlr")
@dataclasses.dataclass(frozen=True, repr=False)
class APGDDLR(APGD):
    """APGD on the untargeted DLR loss (shift- and rescaling-invariant in the logits)."""

    loss = "dlr"


@register_attack("apgd_t")
@dataclasses.dataclass(frozen=True, repr=False)
class APGDTargeted(APGD):
    """APGD on the targeted DLR loss, once per target among the ``n_targets`` most likely wrong classes.

    Attributes:
        n_targets: target classes tried (AutoAttack: 9).
    """

    loss = "dlr"
    targeted = True
    n_targets: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        count(self, "n_targets")
