"""The Linf Square Attack: a score-based, gradient-free random search, in JAX.

Reference: M. Andriushchenko, F. Croce, N. Flammarion, M. Hein, "Square Attack: a
query-efficient black-box adversarial attack via random search", ECCV 2020
(arXiv:1912.00049). Written from the paper (Algorithms 1 and 2, Sec. 3.1 and App. B)
with the authors' code (max-andr/square-attack) read for details only.

The attack minimises the margin ``logit_y - max_{j != y} logit_j`` of the target's forward
logits, never their gradient, so the choice of surrogate gradient (BPDA) does not matter to
it. It starts from vertical stripes (each column and channel of an image set to ``+eps`` or
``-eps`` at random) and then, for ``queries - 1`` iterations, proposes to overwrite one
square of the perturbation, at a random position, with one random sign per channel
(``+-eps``, clipped to [0, 1]); a proposal is kept if it lowers the image's best margin.
The side of the square is ``round(sqrt(p * H * W))`` clipped to ``[1, min(H, W) - 1]``,
where the fraction ``p`` starts at ``p_init`` and halves when the iteration, rescaled to a
budget of 10,000 queries (``floor(i * 10000 / queries)``), passes 10, 50, 200, 500, 1000,
2000, 4000, 6000 and 8000. An image whose best margin is negative is fooled and frozen.

Departures from the paper / original code:

* the whole batch is searched at once, one pure step per query run by ``attacks.loop``'s rule
  (a host loop over the compiled step on CPU, checking every 20 queries whether every image is
  fooled; a ``lax.while_loop`` that stops as soon as they are elsewhere); frozen images are
  still evaluated (their result is discarded);
* a proposal that would not change the image (the square already holds the drawn signs) is
  redrawn in the original until it does; here the same distribution (uniform over the sign
  vectors that change something) is drawn in one step without a loop;
* square corners are uniform over all ``H - s + 1`` positions (the original's
  ``randint(0, h - s)`` never touches the last row/column);
* every image is attacked, not only the correctly classified ones (a misclassified one is
  usually frozen after the first query);
* for a randomized target every query passes a fresh key, so the margin is the average over
  that query's EOT draws; the kept margin is the (noisy) one measured when it was accepted,
  and ``success`` is judged on it;
* default ``p_init = 0.05`` is the paper's value for standard (undefended) models; the
  authors use 0.3 (and AutoAttack 0.8) against defended ones.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp

from attacks.loop import compiled_step, host_loop_default
from attacks.specs import LinfAttack, count, positive, register_attack
from attacks.target import AttackOutput, AttackTarget, as_target

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # on the paper's 10,000-query scale


def margin(logits: jax.Array, y: jax.Array) -> jax.Array:
    """``logit_y - max_{j != y} logit_j`` of ``logits`` ``[B, K]`` and labels ``y`` ``[B]`` -> ``[B]``."""
    true = jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
    other = jnp.where(jax.nn.one_hot(y, logits.shape[-1], dtype=bool), -jnp.inf, logits).max(-1)
    return true - other


def halving_starts(queries: int) -> tuple[int, ...]:
    """First iteration index of each halving of ``p`` for a budget of ``queries``.

    Iteration ``i`` is at ``floor(i * 10000 / queries)`` on the paper's scale, which exceeds
    ``b`` iff ``i >= ceil((b + 1) * queries / 10000)`` (exact integer arithmetic).
    """
    return tuple(-(-(b + 1) * queries // 10000) for b in _HALVINGS)


def square_side(i: jax.Array, p_init: float, queries: int, height: int, width: int) -> jax.Array:
    """Side of the square at iteration ``i`` (a traced int32 scalar)."""
    halvings = sum((i >= t).astype(jnp.int32) for t in halving_starts(queries))
    p = p_init / jnp.exp2(halvings.astype(jnp.float32))
    side = jnp.round(jnp.sqrt(p * height * width)).astype(jnp.int32)
    return jnp.clip(side, 1, max(min(height, width) - 1, 1))


@register_attack("square")
@dataclasses.dataclass(frozen=True, repr=False)
class Square(LinfAttack):
    """Linf Square Attack (Andriushchenko et al., ECCV 2020): ``queries`` forward queries.

    Attributes:
        eps: Linf budget in /255.
        queries: forward evaluations per image, the stripes initialisation included.
        p_init: initial fraction of the pixels a square covers (halved on the schedule).
    """

    gradient_free: ClassVar[bool] = True
    queries: int = 1000
    p_init: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "p_init")
        count(self, "queries")
        if self.p_init > 1:
            raise ValueError(f"p_init must be in (0, 1], got {self.p_init!r}")

    def run(self, target: AttackTarget | Callable[[jax.Array], jax.Array], x: jax.Array, y: jax.Array,
            key: jax.Array) -> AttackOutput:
        """Runs the attack on a batch.

        Args:
            target: an ``AttackTarget`` (only its forward ``logits`` are used) or a plain
                ``x -> logits`` function.
            x: float32 ``[B, H, W, C]`` in [0, 1].
            y: int ``[B]`` true labels.
            key: all the attack's randomness (squares, signs, the target's EOT draws).

        Returns:
            ``AttackOutput``: ``x_adv`` float32 ``[B, H, W, C]`` within ``eps``/255 of ``x``
            and in [0, 1]; ``success`` bool ``[B]``: its last accepted margin is negative.
        """
        run = _compiled(self, as_target(target), host_loop_default())
        x_adv, best = run(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32), key)
        return AttackOutput(x_adv=x_adv, success=best < 0)


CHECK_EVERY = 20
"""On a host loop, how often (in queries) to stop early when every image is fooled."""


def _search_fns(attack: Square, logits_fn: Callable[[jax.Array, jax.Array], jax.Array]
                ) -> tuple[Callable, Callable]:
    """``init(x, y, key) -> (state, consts)`` and ``step(i, state, *consts) -> state`` of the random search.

    The state is ``(x_best [B, H, W, C], best margin [B])``; iteration ``i`` makes query ``i + 1``.
    """
    eps = attack.eps / 255.0

    def init(x: jax.Array, y: jax.Array, key: jax.Array) -> tuple[tuple, tuple]:
        b, _, w, c = x.shape
        k_init, k_loop, k_eval = jax.random.split(key, 3)
        up, down = jnp.clip(x + eps, 0.0, 1.0), jnp.clip(x - eps, 0.0, 1.0)  # the two values a pixel takes
        stripes = jax.random.bernoulli(k_init, 0.5, (b, 1, w, c))
        x_best = jnp.where(stripes, up, down)
        best = margin(logits_fn(x_best, jax.random.fold_in(k_eval, 0)), y)
        return (x_best, best), (y, up, down, k_loop, k_eval)

    def step(i: jax.Array, state: tuple, y: jax.Array, up: jax.Array, down: jax.Array, k_loop: jax.Array,
             k_eval: jax.Array) -> tuple:
        x_best, best = state
        b, h, w, c = x_best.shape
        rows = jnp.arange(h)[None, :, None]
        cols = jnp.arange(w)[None, None, :]
        k_pos_h, k_pos_w, k_sign, k_flip = jax.random.split(jax.random.fold_in(k_loop, i), 4)
        s = square_side(i, attack.p_init, attack.queries, h, w)
        top = jax.random.randint(k_pos_h, (b, 1, 1), 0, h - s + 1)
        left = jax.random.randint(k_pos_w, (b, 1, 1), 0, w - s + 1)
        mask = ((rows >= top) & (rows < top + s) & (cols >= left) & (cols < left + s))[..., None]  # [B,H,W,1]
        # per channel: does the square already hold +eps (resp. -eps) everywhere?
        holds_up = jnp.all(~mask | (x_best == up), axis=(1, 2))  # [B, C]
        holds_down = jnp.all(~mask | (x_best == down), axis=(1, 2))
        # if some sign vector leaves the image unchanged, draw uniformly among the others
        stuck = jnp.all(holds_up | holds_down, axis=-1, keepdims=True)  # [B, 1]
        flips = jax.random.randint(k_flip, (b, 1), 1, 2**c)
        flipped = holds_up ^ (((flips >> jnp.arange(c)) & 1) == 1)
        signs = jnp.where(stuck, flipped, jax.random.bernoulli(k_sign, 0.5, (b, c)))
        x_new = jnp.where(mask, jnp.where(signs[:, None, None, :], up, down), x_best)
        new = margin(logits_fn(x_new, jax.random.fold_in(k_eval, i + 1)), y)
        accept = (best >= 0) & (new < best)
        return jnp.where(accept[:, None, None, None], x_new, x_best), jnp.where(accept, new, best)

    return init, step


@functools.lru_cache(maxsize=64)
def _compiled(attack: Square, target: AttackTarget, host: bool) -> Callable:
    """``(x, y, key) -> (x_best, best margin)`` for ``attack`` on ``target``, made once per pair.

    ``host``: a host loop over the compiled step (``attacks.loop``), checking every
    ``CHECK_EVERY`` queries whether every image is fooled; else one ``lax.while_loop`` that
    stops as soon as they are. Frozen images never change, so stopping early changes nothing.
    """
    init, step = _search_fns(attack, target.logits)
    last = attack.queries - 1
    if host:
        init_j, step_j = jax.jit(init), compiled_step(step)

        def run(x: jax.Array, y: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
            state, consts = init_j(x, y, key)
            for i in range(last):
                if i % CHECK_EVERY == 0 and not bool(jnp.any(state[1] >= 0)):
                    break
                state = step_j(i, state, *consts)
            return state

        return run

    @jax.jit
    def run_device(x: jax.Array, y: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        state, consts = init(x, y, key)
        _, x_best, best = jax.lax.while_loop(
            lambda s: (s[0] < last) & jnp.any(s[2] >= 0),
            lambda s: (s[0] + 1, *step(s[0], (s[1], s[2]), *consts)), (jnp.int32(0), *state))
        return x_best, best

    return run_device
