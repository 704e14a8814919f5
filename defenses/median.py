"""``median(size)``: the median filter, per channel, as in SHIELD's comparison.

Median smoothing as an adversarial defense: Xu et al. 2018 (feature squeezing, "spatial
smoothing"); SHIELD (Das et al. 2018, Table 1) compares median filters of size 3 and 5.
Each channel is filtered separately over a ``size`` x ``size`` window; the border mode is
scipy's ``"reflect"`` (``d c b a | a b c d | d c b a``, the edge sample repeated), so the
output equals ``scipy.ndimage.median_filter(x, size=(1, size, size, 1), mode="reflect")``.

Implementation: a selection network. The ``size**2`` shifted views of the image go through
Batcher's odd-even merge sorting network (padded to a power of two with +inf), pruned to
the compare-exchanges the middle output depends on (49 for 3x3, 153 for 5x5): only
elementwise ``min``/``max`` on whole images, which XLA fuses into one loop. Sorting the
stacked views with ``jnp.sort`` was 60-100x slower. Deterministic.

Surrogates offered to the attacker: ``"identity"`` (default, BPDA's straight-through
gradient) and ``"own"``: the filter's own gradient, defined almost everywhere: each output
pixel's cotangent goes to the input pixel that is its window's median. It is written as a
custom VJP (``median_filter``) rather than differentiated through the network: the network's
backward pass is 153 masked selects per pixel for 5x5 and made an APGD step through
``median(size=5)`` about 7x dearer than one through the identity; the custom VJP is 25
masked shifts. Where several window pixels equal the median (ties, common in 8-bit images)
the cotangent is split evenly between them, a subgradient like any other; autodiff through
the network splits it unevenly (``min``/``max`` give half to each tied operand at every
compare-exchange).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from bench.core.transform import Images, Transform, register_transform


def batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Compare-exchange pairs of Batcher's odd-even merge sort for ``n`` (a power of two)."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


@functools.cache
def median_network(m: int) -> tuple[tuple[tuple[int, int], ...], int]:
    """The compare-exchanges that decide the median (index ``m // 2``) of ``m`` values, and
    the padded network width (``m`` rounded up to a power of two)."""
    n = 1 << (m - 1).bit_length()
    need, kept = {m // 2}, []
    for a, b in reversed(batcher_pairs(n)):
        if a in need or b in need:
            kept.append((a, b))
            need |= {a, b}
    return tuple(reversed(kept)), n


def select_median(values: list[jax.Array]) -> jax.Array:
    """Elementwise median of an odd number of equally shaped arrays."""
    pairs, n = median_network(len(values))
    v: list[jax.Array | None] = [*values, *([None] * (n - len(values)))]  # None stands for +inf
    for a, b in pairs:
        if v[b] is None:  # min(x, inf) = x: nothing moves
            continue
        if v[a] is None:
            v[a], v[b] = v[b], None
            continue
        v[a], v[b] = jnp.minimum(v[a], v[b]), jnp.maximum(v[a], v[b])
    return v[len(values) // 2]


def median_views(x: Images, size: int) -> tuple[list[jax.Array], Callable[[jax.Array], jax.Array]]:
    """The ``size**2`` shifted views of ``x`` (reflect-padded) and the padding's transpose."""
    r = size // 2
    _, h, w, _ = x.shape
    padded, unpad = jax.vjp(lambda z: jnp.pad(z, ((0, 0), (r, r), (r, r), (0, 0)), mode="symmetric"), x)
    views = [padded[:, i : i + h, j : j + w, :] for i in range(size) for j in range(size)]
    return views, lambda g: unpad(g)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def median_filter(x: Images, size: int) -> Images:
    """Per-channel ``size`` x ``size`` median of ``x`` ``[B, H, W, C]``, reflect borders.

    Its VJP routes each output pixel's cotangent to the window pixels equal to the median,
    split evenly between them (see the module docstring).
    """
    return select_median(median_views(x, size)[0])


def _median_fwd(x: Images, size: int) -> tuple[Images, tuple[Images, Images]]:
    out = median_filter(x, size)
    return out, (x, out)


def _median_bwd(size: int, res: tuple[Images, Images], g: Images) -> tuple[Images]:
    x, out = res
    views, unpad = median_views(x, size)
    hits = [v == out for v in views]
    share = g / sum(h.astype(g.dtype) for h in hits)  # at least one view equals the median
    r, (_, h, w, _) = size // 2, x.shape
    grad = jnp.zeros((x.shape[0], h + 2 * r, w + 2 * r, x.shape[3]), g.dtype)
    for n, hit in enumerate(hits):
        i, j = divmod(n, size)
        grad = grad.at[:, i : i + h, j : j + w, :].add(jnp.where(hit, share, 0.0))
    return (unpad(grad),)


median_filter.defvjp(_median_fwd, _median_bwd)


@register_transform("median")
@dataclasses.dataclass(frozen=True, repr=False)
class Median(Transform):
    """Per-channel median over a ``size`` x ``size`` window (odd size >= 3).

    Attributes:
        size: window side, odd.

    Surrogates: "identity" and "own" (differentiable almost everywhere).
    """

    spec_fields = ("size",)
    surrogates = ("identity", "own")

    size: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 3 or self.size % 2 == 0:
            raise ValueError(f"median size must be an odd integer >= 3, got {self.size!r}")

    def __call__(self, x: Images, key: jax.Array) -> Images:
        del key
        return median_filter(x, self.size)
