"""``tvm(drop, weight, iters)``: total variation minimization with random pixel dropout.

Guo, Rana, Cissé, van der Maaten, "Countering Adversarial Images using Input
Transformations", ICLR 2018, §3.2: keep a random subset of the pixels and reconstruct the
image as the total-variation-regularised fit to the kept pixels only,

    z* = argmin_z  1/2 * sum_ij m_ij (z_ij - x_ij)^2  +  weight * TV(z),

with ``m`` a Bernoulli mask (a pixel is kept with probability ``1 - drop``, one mask per
pixel shared by the colour channels) and isotropic TV, per channel. The dropped pixels are
filled in by the TV prior; the randomness of the mask is what makes the defense hard to
attack with plain gradients (hence EOT in the adaptive protocol).

Variant and departures. Solved with Chambolle and Pock's primal-dual algorithm (JMIV 2011,
Alg. 1; step sizes sigma = tau = 1/sqrt(8)) for a fixed number of iterations, instead of
the authors' masked split-Bregman solver; the dropped pixels start at the mean of the kept
ones (so no dropped value leaks in through the initialisation). With ``drop=0`` the problem
is Chambolle's ROF problem, so ``weight`` is on the same scale as ``tvd(weight)`` (tested
against scikit-image). Randomized: the mask comes from ``key``.

Surrogates offered to the attacker: ``"identity"`` (default, BPDA's straight-through
gradient) and ``"own"``, the gradient of the unrolled iterations for the key's mask (kept
finite where the dual field is zero by ``defenses.tvd.safe_norm``).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from bench.core.transform import Images, Transform, register_transform
from defenses.tvd import gradient, neg_divergence, safe_norm

_STEP = 1.0 / math.sqrt(8.0)


def masked_tv(f: jax.Array, m: jax.Array, weight: float, iters: int) -> jax.Array:
    """Primal-dual solution of ``min_z 1/2 ||m (z - f)||^2 + weight TV(z)`` on planes ``[P, H, W]``.

    Args:
        f: the planes.
        m: the per-pixel fidelity weights (0 or 1), same shape.
        weight: TV weight.
        iters: iterations.
    """
    kept = jnp.sum(m * f, axis=(1, 2), keepdims=True) / jnp.maximum(jnp.sum(m, axis=(1, 2), keepdims=True), 1.0)
    u0 = m * f + (1.0 - m) * kept
    tau = sigma = _STEP

    def body(_, state):
        u, u_bar, ph, pw = state
        gh, gw = gradient(u_bar)
        ph, pw = ph + sigma * gh, pw + sigma * gw
        scale = jnp.maximum(1.0, safe_norm(ph, pw) / weight)
        ph, pw = ph / scale, pw / scale
        v = u - tau * neg_divergence(ph, pw)
        u_new = (v + tau * m * f) / (1.0 + tau * m)
        return u_new, 2.0 * u_new - u, ph, pw

    zeros = jnp.zeros_like(f)
    u, _, _, _ = jax.lax.fori_loop(0, iters, body, (u0, u0, zeros, zeros))
    return u


@register_transform("tvm")
@dataclasses.dataclass(frozen=True, repr=False)
class TVM(Transform):
    """Total variation minimization of a random subset of the pixels (randomized).

    Attributes:
        drop: probability that a pixel is dropped (0 <= drop < 1).
        weight: TV weight on [0, 1] images (``tvd``'s scale).
        iters: primal-dual iterations.

    Surrogates: "identity" and "own" (finite everywhere, see ``defenses.tvd.safe_norm``).
    """

    randomized = True
    surrogates = ("identity", "own")
    spec_fields = ("drop", "weight")

    drop: float = 0.5
    weight: float = 0.03
    iters: int = 100

    def __post_init__(self) -> None:
        if isinstance(self.drop, bool) or not isinstance(self.drop, (int, float)) or not 0 <= self.drop < 1:
            raise ValueError(f"drop must be in [0, 1), got {self.drop!r}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or self.weight <= 0:
            raise ValueError(f"weight must be a positive number, got {self.weight!r}")
        if isinstance(self.iters, bool) or not isinstance(self.iters, int) or self.iters < 1:
            raise ValueError(f"iters must be a positive integer, got {self.iters!r}")

    def __call__(self, x: Images, key: jax.Array) -> Images:
        b, h, w, c = x.shape
        keep = jax.random.bernoulli(key, 1.0 - self.drop, (b, 1, h, w)).astype(x.dtype)
        planes = x.transpose(0, 3, 1, 2).reshape(b * c, h, w)
        mask = jnp.broadcast_to(keep, (b, c, h, w)).reshape(b * c, h, w)
        out = masked_tv(planes, mask, float(self.weight), self.iters)
        return jnp.clip(out.reshape(b, c, h, w).transpose(0, 2, 3, 1), 0.0, 1.0)
