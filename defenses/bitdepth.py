"""``bitdepth(bits)``: feature squeezing's bit-depth reduction.

Xu, Evans, Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep Neural
Networks", NDSS 2018, §3.1: each value in [0, 1] is mapped to the nearest of ``2^bits``
evenly spaced levels, ``round(x * (2^bits - 1)) / (2^bits - 1)``, with NumPy's rounding
(half to even, as ``np.rint`` in the authors' code). Deterministic.

Surrogates offered to the attacker: ``"identity"`` (default; Athalye et al. 2018 attacked
it that way) and ``"smooth"``, a differentiable staircase: with ``t = x * (2^bits - 1)``
and ``r = round(t)``, ``(r + (t - r)**3) / (2^bits - 1)``, the cubic rounding of Shin &
Song's differentiable JPEG ("JPEG-resistant Adversarial Images", NIPS 2017 Workshop on
Machine Learning and Computer Security; ``defenses.dct.cubic_round``, also used by
``jpeg``'s ``"cubic"`` surrogate). It is continuous, within ``1 / (8 (2^bits - 1))`` of the
real output (a quarter of the identity's worst case), and its gradient ``3 (t - r)**2`` is
non-zero except on the levels themselves, where the identity surrogate still moves.
Chosen over a sigmoid staircase because it has no temperature to tune and matches ``jpeg``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from bench.core.transform import Images, Transform, check_surrogate, register_transform
from defenses import dct


@register_transform("bitdepth")
@dataclasses.dataclass(frozen=True, repr=False)
class BitDepth(Transform):
    """Reduces every channel to ``bits`` bits (1..8).

    Attributes:
        bits: bits per channel kept.

    Surrogates: "identity" and "smooth" (cubic rounding of the levels).
    """

    spec_fields = ("bits",)
    surrogates = ("identity", "smooth")

    bits: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or isinstance(self.bits, bool) or not 1 <= self.bits <= 8:
            raise ValueError(f"bits must be an integer in 1..8, got {self.bits!r}")

    def __call__(self, x: Images, key: jax.Array) -> Images:
        del key
        levels = float(2**self.bits - 1)
        return jnp.round(x * levels) / levels

    def approx(self, x: Images, key: jax.Array, surrogate: str = "identity") -> Images:
        """The "smooth" surrogate: ``cubic_round(x * levels) / levels`` (see the module docstring)."""
        check_surrogate(self, surrogate)
        if surrogate != "smooth":
            return super().approx(x, key, surrogate)
        levels = float(2**self.bits - 1)
        return dct.cubic_round(x * levels) / levels
