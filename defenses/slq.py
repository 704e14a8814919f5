"""``slq(qualities, block)``: SHIELD's Stochastic Local Quantization, in one JPEG pass.

Das et al., "SHIELD: Fast, Practical Defense and Vaccination for Deep Learning using JPEG
Compression", KDD 2018, §3.2: every 8x8 block of the image is JPEG-compressed at a quality
drawn at random from ``qualities`` (20, 40, 60, 80), so an attacker cannot target one
quantization table.

Implemented as **one** JPEG round trip (``defenses.jpeg.roundtrip``, libjpeg-exact) whose
quantization table varies per block: a random index map is drawn from ``key`` and each
block is quantized with the IJG-scaled table of its quality. Cost: about one ``jpeg``.

Chroma (4:2:0): an 8x8 chroma block covers 16x16 pixels, i.e. four luma blocks that may
have four different qualities, so it cannot share "its" block's quality. Each chroma block
therefore draws its own quality, independently, from the same set, with the chrominance
table of that quality: every pixel's chroma is quantized at a uniformly random quality, as
in the original. With ``subsampling="4:4:4"`` chroma blocks align with luma blocks and use
the same draw.

Departures from the released code (poloclub/jpeg-defense, see ``shared/notes/peers.md``):
the original ran K full-image JPEG round trips and copied each 8x8 output block from the
decode at that block's quality (one index shared by R, G and B), so a block's chroma was
the full-image chroma decode at that quality, with quantization context crossing block
borders through 4:2:0 and fancy upsampling. Here the chroma draw is per chroma block as
described. The original's randomness was unseeded; here the map is a function of ``key``
(same key, same output; ``vmap`` over keys gives independent draws, as EOT needs). Its
block-count bug for non-square images, its float -> uint8 truncation and its extra centre
crop are not reproduced.

Surrogates offered to the attacker: ``"identity"`` (default), ``"cubic"`` and ``"ste"``
(``jpeg``'s smooth float pipeline with the same per-block tables; see ``defenses/jpeg.py``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from bench.core.transform import Images, Transform, check_surrogate, register_transform
from defenses import dct
from defenses.jpeg import SUBSAMPLINGS, check_choice, roundtrip


def block_tables(key: jax.Array, tables: jax.Array, batch: int, h: int, w: int, block: int) -> jax.Array:
    """Random per-block tables in the planar block layout ``[8, 8, N]`` of ``dct.to_blocks``.

    Args:
        key: PRNG key of the draw.
        tables: ``[K, 8, 8]`` candidate tables.
        batch, h, w: plane shape (H, W multiples of 8).
        block: size in pixels of the squares that share one draw (a multiple of 8).
    """
    rep = block // 8
    nh, nw = -(-h // block), -(-w // block)
    index = jax.random.randint(key, (batch, nh, nw), 0, tables.shape[0])
    index = jnp.repeat(jnp.repeat(index, rep, axis=1), rep, axis=2)[:, : h // 8, : w // 8]
    return tables.transpose(1, 2, 0)[:, :, index.reshape(-1)]  # [8, 8, B * h/8 * w/8]


@register_transform("slq")
@dataclasses.dataclass(frozen=True, repr=False)
class SLQ(Transform):
    """Stochastic Local Quantization: a random JPEG quality per ``block`` x ``block`` square.

    Attributes:
        qualities: the candidate IJG qualities.
        block: side of the squares sharing a quality, in pixels (a multiple of 8).
        subsampling: chroma subsampling of the underlying JPEG ("4:2:0" as SHIELD).

    Surrogates: "identity", "cubic" and "ste" (the differentiable JPEG with the same random
    map of qualities, drawn from the same key).
    """

    randomized = True
    surrogates = ("identity", "cubic", "ste")
    qualities: tuple[int, ...] = (20, 40, 60, 80)
    block: int = 8
    subsampling: str = "4:2:0"

    def __post_init__(self) -> None:
        object.__setattr__(self, "qualities", tuple(self.qualities))
        if not self.qualities:
            raise ValueError("qualities must not be empty")
        for q in self.qualities:
            dct.quality_scale(q)
        if self.block < 8 or self.block % 8:
            raise ValueError(f"block must be a positive multiple of 8, got {self.block}")
        check_choice(self.subsampling, SUBSAMPLINGS, "subsampling")

    def _tables(self, x: Images, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        b, h, w, c = x.shape
        sub = self.subsampling == "4:2:0" and c == 3
        mcu = 16 if sub else 8
        hp, wp = h + (-h % mcu), w + (-w % mcu)
        luma = jnp.asarray(np.stack([dct.scaled_table(dct.LUMA_TABLE, q) for q in self.qualities]), jnp.float32)
        chroma = jnp.asarray(np.stack([dct.scaled_table(dct.CHROMA_TABLE, q) for q in self.qualities]), jnp.float32)
        k_luma, k_chroma = jax.random.split(key)
        luma_plane = block_tables(k_luma, luma, b, hp, wp, self.block)
        if sub:
            chroma_plane = block_tables(k_chroma, chroma, b, hp // 2, wp // 2, max(self.block, 16) // 2)
        else:
            chroma_plane = block_tables(k_luma, chroma, b, hp, wp, self.block)
        return luma_plane, chroma_plane

    def __call__(self, x: Images, key: jax.Array) -> Images:
        return roundtrip(x, *self._tables(x, key), self.subsampling, table_layout="blocks")

    def approx(self, x: Images, key: jax.Array, surrogate: str = "identity") -> Images:
        """The "cubic" and "ste" surrogates: the smooth float round trip with this key's tables."""
        check_surrogate(self, surrogate)
        if surrogate not in ("cubic", "ste"):
            return super().approx(x, key, surrogate)
        return roundtrip(x, *self._tables(x, key), self.subsampling, exact=False, rounding=surrogate,
                         table_layout="blocks")
