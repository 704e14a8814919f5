"""``bitdepth(bits)``: feature squeezing's bit-depth reduction.

Xu, Evans, Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep Neural
Networks", NDSS 2018, §3.1: each value in [0, 1] is mapped to the nearest of ``2^bits``
evenly spaced levels, ``round(x * (2^bits - 1)) / (2^bits - 1)``, with NumPy's rounding
(half to even, as ``np.rint`` in the authors' code). Deterministic; the BPDA surrogate is
the identity (Athalye et al. 2018 attacked it that way).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from bench.transform import Images, Transform, register_transform


@register_transform("bitdepth")
@dataclasses.dataclass(frozen=True, repr=False)
class BitDepth(Transform):
    """Reduces every channel to ``bits`` bits (1..8).

    Attributes:
        bits: bits per channel kept.
    """

    spec_fields = ("bits",)

    bits: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or isinstance(self.bits, bool) or not 1 <= self.bits <= 8:
            raise ValueError(f"bits must be an integer in 1..8, got {self.bits!r}")

    def __call__(self, x: Images, key: jax.Array) -> Images:
        del key
        levels = float(2**self.bits - 1)
        return jnp.round(x * levels) / levels
