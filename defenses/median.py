"""``median(size)``: the median filter, per channel, as in SHIELD's comparison.

Median smoothing as an adversarial defense: Xu et al. 2018 (feature squeezing, "spatial
smoothing"); SHIELD (Das et al. 2018, Table 1) compares median filters of size 3 and 5.
Each channel is filtered separately over a ``size`` x ``size`` window; the border mode is
scipy's ``"reflect"`` (``d c b a | a b c d | d c b a``, the edge sample repeated), so the
output equals ``scipy.ndimage.median_filter(x, size=(1, size, size, 1), mode="reflect")``.

Implementation: the ``size**2`` shifted views are stacked and sorted along the new axis
(XLA's sort on a short trailing axis), and the middle value taken. Deterministic; the BPDA
surrogate is the identity.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from bench.transform import Images, Transform, register_transform


@register_transform("median")
@dataclasses.dataclass(frozen=True, repr=False)
class Median(Transform):
    """Per-channel median over a ``size`` x ``size`` window (odd size >= 3).

    Attributes:
        size: window side, odd.
    """

    size: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 3 or self.size % 2 == 0:
            raise ValueError(f"median size must be an odd integer >= 3, got {self.size!r}")

    def __call__(self, x: Images, key: jax.Array) -> Images:
        del key
        k, r = self.size, self.size // 2
        _, h, w, _ = x.shape
        padded = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="symmetric")
        views = [padded[:, i : i + h, j : j + w, :] for i in range(k) for j in range(k)]
        return jnp.sort(jnp.stack(views, axis=-1), axis=-1)[..., k * k // 2]
