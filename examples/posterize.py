"""An example submission: posterization as a preprocessing defense.

Score it with ``shieldbench submit examples/posterize.py``. A submission imports only
``bench`` and jax, registers a transform (or a defense), and keeps ``__call__`` pure.
"""

import dataclasses

import jax
import jax.numpy as jnp

from bench import Transform, register_transform


@register_transform("posterize")
@dataclasses.dataclass(frozen=True, repr=False)
class Posterize(Transform):
    """Rounds every channel to ``levels`` evenly spaced values.

    Attributes:
        levels: number of output values per channel (2..256).
    """

    levels: int = 8

    def __post_init__(self) -> None:
        if not 2 <= self.levels <= 256:
            raise ValueError(f"levels must be in 2..256, got {self.levels}")

    def __call__(self, x: jax.Array, key: jax.Array) -> jax.Array:
        del key  # deterministic
        return jnp.round(x * (self.levels - 1)) / (self.levels - 1)

    # Surrogate gradients belong to the attacker: `surrogates` is inherited as ("identity",),
    # BPDA's straight-through gradient, and so is approx(x, key, surrogate). To offer more,
    # declare e.g. `surrogates = ("identity", "smooth")` and override
    # approx(self, x, key, surrogate="identity") to compute them (deferring to
    # super().approx for "identity"); the adaptive attack tries every declared surrogate.
