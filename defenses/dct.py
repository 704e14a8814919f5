"""JPEG building blocks in JAX: colour conversion, chroma resampling, 8x8 block DCT, tables.

Reference: ITU-T T.81 / ISO 10918-1 (the JPEG standard; Annex K for the example tables) and
the Independent JPEG Group's libjpeg (as in libjpeg-turbo, which Pillow ships), whose
arithmetic the ``exact`` paths reproduce so that our round trip matches Pillow's:

* RGB <-> YCbCr (JFIF) in libjpeg's 16-bit fixed point, with its rounding (``jccolor.c``,
  ``jdcolor.c``);
* 4:2:0 chroma downsampling as libjpeg's ``h2v2_downsample`` (2x2 mean with the alternating
  1, 2 rounding bias) after edge replication to whole MCUs;
* upsampling as libjpeg's default "fancy" ``h2v2_fancy_upsample`` (triangle filter, 9/16,
  3/16, 3/16, 1/16 weights, its rounding, edge replication at the image border);
* the IJG quality scaling of the Annex K tables, clamped to 1..255 (baseline), as
  ``jpeg_set_quality(..., force_baseline=TRUE)``.

* the accurate integer DCT and IDCT ("islow", ``jfdctint.c``/``jidctint.c``) and the
  quantizer's round-half-away-from-zero on 8x-scaled coefficients, bit for bit.

The smooth float paths (orthonormal float DCT-II, float colour and resampling) serve the
differentiable BPDA surrogates and the Feature Distillation presets. One libjpeg detail is
not reproduced: its IDCT range-limit table wraps values beyond +383 to 0; we clamp (such
values need coefficients no real encoder emits).

Every plane function keeps the block layout in place (``[B, H, W]`` with coefficient (u, v)
of block (i, j) at pixel (8i + u, 8j + v)), so no transposes are needed between stages. The
non-``exact`` paths are smooth float versions for differentiable surrogates.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

# ITU-T T.81 Annex K, Tables K.1 (luminance) and K.2 (chrominance), natural (row-major) order.
LUMA_TABLE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
], np.int32)
CHROMA_TABLE = np.full((8, 8), 99, np.int32)
CHROMA_TABLE[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]


def quality_scale(quality: int) -> int:
    """IJG quality (1..100) -> percentage scaling of the base tables (``jpeg_quality_scaling``)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    return 5000 // quality if quality < 50 else 200 - 2 * quality


def scaled_table(base: np.ndarray, quality: int) -> np.ndarray:
    """The quantization table libjpeg uses at ``quality`` (baseline: clamped to 1..255)."""
    table = (base.astype(np.int64) * quality_scale(quality) + 50) // 100
    return np.clip(table, 1, 255).astype(np.int32)


def dct_matrix() -> np.ndarray:
    """Orthonormal 8-point DCT-II matrix ``D`` (``D @ D.T == I``), rows are frequencies."""
    n = np.arange(8)
    d = np.cos((2 * n[None, :] + 1) * n[:, None] * np.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d.astype(np.float32)


_D = dct_matrix()


def _blockwise(plane: jax.Array, subscripts: str) -> jax.Array:
    b, h, w = plane.shape
    d = jnp.asarray(_D)
    blocks = plane.reshape(b, h // 8, 8, w // 8, 8)
    return jnp.einsum(subscripts, d, blocks, d, precision=jax.lax.Precision.HIGHEST).reshape(b, h, w)


def block_dct(plane: jax.Array) -> jax.Array:
    """8x8 block DCT-II of ``[B, H, W]`` (H, W multiples of 8), coefficients in place."""
    return _blockwise(plane, "uy,bhywx,vx->bhuwv")


def block_idct(coefs: jax.Array) -> jax.Array:
    """Inverse of :func:`block_dct`."""
    return _blockwise(coefs, "uy,bhuwv,vx->bhywx")


# ----------------------------------------------------------------------------- islow
# libjpeg's accurate integer DCT ("islow", Loeffler-Ligtenberg-Moschytz with 13-bit
# constants; jfdctint.c / jidctint.c), reproduced operation for operation on int32 so that
# coefficients that sit exactly on a quantization boundary round as libjpeg rounds them
# (common when re-compressing images that were JPEG-compressed before, as CIFAR-10 here).
_CB, _PB = 13, 2  # CONST_BITS, PASS1_BITS
_F = {name: int(round(v * (1 << _CB))) for name, v in {
    "0_298": 0.298631336, "0_390": 0.390180644, "0_541": 0.541196100, "0_765": 0.765366865,
    "0_899": 0.899976223, "1_175": 1.175875602, "1_501": 1.501321110, "1_847": 1.847759065,
    "1_961": 1.961570560, "2_053": 2.053119869, "2_562": 2.562915447, "3_072": 3.072711026}.items()}


def _descale(x: jax.Array, n: int) -> jax.Array:
    return jnp.right_shift(x + (1 << (n - 1)), n)


def _odd_part(t4, t5, t6, t7):
    """Shared odd-part rotation of the islow DCT and IDCT (returns the four odd outputs)."""
    z1, z2, z3, z4 = t4 + t7, t5 + t6, t4 + t6, t5 + t7
    z5 = (z3 + z4) * _F["1_175"]
    t4, t5, t6, t7 = t4 * _F["0_298"], t5 * _F["2_053"], t6 * _F["3_072"], t7 * _F["1_501"]
    z1, z2 = z1 * -_F["0_899"], z2 * -_F["2_562"]
    z3, z4 = z3 * -_F["1_961"] + z5, z4 * -_F["0_390"] + z5
    return t4 + z1 + z3, t5 + z2 + z4, t6 + z2 + z3, t7 + z1 + z4


def _fdct_1d(d: list[jax.Array], first: bool) -> list[jax.Array]:
    t0, t7, t1, t6 = d[0] + d[7], d[0] - d[7], d[1] + d[6], d[1] - d[6]
    t2, t5, t3, t4 = d[2] + d[5], d[2] - d[5], d[3] + d[4], d[3] - d[4]
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    n = _CB - _PB if first else _CB + _PB
    out = [None] * 8
    if first:
        out[0], out[4] = jnp.left_shift(t10 + t11, _PB), jnp.left_shift(t10 - t11, _PB)
    else:
        out[0], out[4] = _descale(t10 + t11, _PB), _descale(t10 - t11, _PB)
    z1 = (t12 + t13) * _F["0_541"]
    out[2], out[6] = _descale(z1 + t13 * _F["0_765"], n), _descale(z1 + t12 * -_F["1_847"], n)
    o7, o5, o3, o1 = _odd_part(t4, t5, t6, t7)
    out[7], out[5], out[3], out[1] = (_descale(v, n) for v in (o7, o5, o3, o1))
    return out


def _idct_1d(d: list[jax.Array], first: bool) -> list[jax.Array]:
    z1 = (d[2] + d[6]) * _F["0_541"]
    t2, t3 = z1 + d[6] * -_F["1_847"], z1 + d[2] * _F["0_765"]
    t0, t1 = jnp.left_shift(d[0] + d[4], _CB), jnp.left_shift(d[0] - d[4], _CB)
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    o0, o1, o2, o3 = _odd_part(d[7], d[5], d[3], d[1])
    n = _CB - _PB if first else _CB + _PB + 3
    pairs = [(t10, o3), (t11, o2), (t12, o1), (t13, o0)]
    out = [None] * 8
    for k, (even, odd) in enumerate(pairs):
        out[k], out[7 - k] = _descale(even + odd, n), _descale(even - odd, n)
    return out


def _apply_1d(blocks: jax.Array, axis: int, fn, first: bool) -> jax.Array:
    parts = [jax.lax.index_in_dim(blocks, k, axis, keepdims=False) for k in range(8)]
    return jnp.stack(fn(parts, first), axis=axis)


def to_blocks(plane: jax.Array) -> jax.Array:
    """``[B, H, W]`` (H, W multiples of 8) -> planar blocks ``[8, 8, N]``, N = B H W / 64.

    The integer DCT runs in this layout: each of its 8-point butterflies then works on
    contiguous ``[8, N]`` rows, which XLA vectorises well (measured 3x faster than working
    on the image layout in place; see ``bench/perf/dct_throughput.py``).
    """
    b, h, w = plane.shape
    return plane.reshape(b, h // 8, 8, w // 8, 8).transpose(2, 4, 0, 1, 3).reshape(8, 8, -1)


def from_blocks(blocks: jax.Array, b: int, h: int, w: int) -> jax.Array:
    """Inverse of :func:`to_blocks`."""
    return blocks.reshape(8, 8, b, h // 8, w // 8).transpose(2, 3, 0, 4, 1).reshape(b, h, w)


def fdct_islow(blocks: jax.Array) -> jax.Array:
    """libjpeg's integer forward DCT of level-shifted planar blocks ``[8, 8, N]``; output x8."""
    blocks = blocks.astype(jnp.int32)
    blocks = _apply_1d(blocks, 1, _fdct_1d, True)  # rows
    return _apply_1d(blocks, 0, _fdct_1d, False)  # columns


def idct_islow(coefs: jax.Array) -> jax.Array:
    """libjpeg's integer inverse DCT of dequantized planar blocks ``[8, 8, N]``: samples 0..255."""
    blocks = _apply_1d(coefs.astype(jnp.int32), 0, _idct_1d, True)  # columns
    blocks = _apply_1d(blocks, 1, _idct_1d, False)  # rows
    return jnp.clip(blocks + 128, 0, 255)


def quantize_islow(scaled: jax.Array, table: jax.Array) -> jax.Array:
    """libjpeg's quantizer on 8x-scaled integer coefficients: returns the dequantized values.

    ``q = floor((|t| + 4 Q) / (8 Q))`` with the sign of ``t`` (the divisor is 8 Q because
    islow output is scaled by 8; libjpeg-turbo's reciprocal multiply computes exactly this),
    then ``q * Q``. Computed in float32, which is exact here (all operands are integers
    below 2^24) once the quotient is corrected by one where division rounded across an
    integer; integer division is 10x slower on CPU.

    Args:
        scaled: planar ``[8, 8, N]`` int32 coefficients.
        table: ``[8, 8]`` or per-block ``[8, 8, N]`` positive integer steps.
    """
    t = jnp.asarray(table, jnp.float32)
    if t.ndim == 2:
        t = t[:, :, None]
    a = jnp.abs(scaled).astype(jnp.float32) + 4.0 * t
    d = 8.0 * t
    q = jnp.floor(a / d)
    q = q - (q * d > a) + ((q + 1.0) * d <= a)
    return jnp.sign(scaled) * (q * t).astype(jnp.int32)


def tile_table(table: jax.Array, h: int, w: int) -> jax.Array:
    """Repeats an 8x8 table over a ``[H, W]`` block-layout plane."""
    return jnp.tile(jnp.asarray(table, jnp.float32), (h // 8, w // 8))


# ----------------------------------------------------------------------------- rounding
def round_half_away(x: jax.Array) -> jax.Array:
    """Rounds halves away from zero (libjpeg's quantizer)."""
    return jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5)


def cubic_round(x: jax.Array) -> jax.Array:
    """``round(x) + (x - round(x))**3``: rounds, with a non-zero gradient (Shin & Song 2017)."""
    r = jax.lax.stop_gradient(jnp.round(x))
    return r + (x - r) ** 3


def ste_round(x: jax.Array) -> jax.Array:
    """Straight-through rounding: forward ``round(x)``, gradient 1."""
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


ROUNDINGS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "exact": round_half_away, "even": jnp.round, "cubic": cubic_round, "ste": ste_round,
}


def quantize(coefs: jax.Array, table: jax.Array, rounding: str = "exact") -> jax.Array:
    """Quantize-dequantize: ``round(coefs / table) * table`` with the chosen rounding."""
    return ROUNDINGS[rounding](coefs / table) * table


# ----------------------------------------------------------------------------- colour
def _fix(v: float) -> int:
    return int(v * 65536 + 0.5)


_RGB2YCC = np.array([
    [_fix(0.299), _fix(0.587), _fix(0.114)],
    [-_fix(0.16874), -_fix(0.33126), _fix(0.5)],
    [_fix(0.5), -_fix(0.41869), -_fix(0.08131)],
], np.int32)
_YCC_OFFSET = np.array([32768, (128 << 16) + 32767, (128 << 16) + 32767], np.int32)
_YCC2RGB_FLOAT = np.array([[1.0, 0.0, 1.402], [1.0, -0.34414, -0.71414], [1.0, 1.772, 0.0]], np.float32)


def rgb_to_ycbcr_planes(r: jax.Array, g: jax.Array, b: jax.Array, exact: bool = True) -> tuple[jax.Array, ...]:
    """JFIF RGB -> YCbCr on levels 0..255, one plane per component (any equal shapes).

    ``exact``: integer levels in, libjpeg's 16-bit fixed point and rounding (``jccolor.c``);
    else the smooth float transform.
    """
    m, off = _RGB2YCC.tolist(), _YCC_OFFSET.tolist()
    if exact:
        r, g, b = (v.astype(jnp.int32) for v in (r, g, b))
        return tuple(jnp.right_shift(m[k][0] * r + m[k][1] * g + m[k][2] * b + off[k], 16).astype(jnp.float32)
                     for k in range(3))
    return tuple((m[k][0] * r + m[k][1] * g + m[k][2] * b) / 65536.0 + (0.0 if k == 0 else 128.0) for k in range(3))


def ycbcr_to_rgb_planes(y: jax.Array, cb: jax.Array, cr: jax.Array, exact: bool = True) -> tuple[jax.Array, ...]:
    """JFIF YCbCr -> RGB on levels 0..255, clamped to 0..255 (``jdcolor.c`` when ``exact``)."""
    if exact:
        y, cb, cr = y.astype(jnp.int32), cb.astype(jnp.int32) - 128, cr.astype(jnp.int32) - 128
        half = 1 << 15
        r = y + jnp.right_shift(_fix(1.402) * cr + half, 16)
        g = y + jnp.right_shift(-_fix(0.34414) * cb - _fix(0.71414) * cr + half, 16)
        b = y + jnp.right_shift(_fix(1.772) * cb + half, 16)
        return tuple(jnp.clip(v, 0, 255).astype(jnp.float32) for v in (r, g, b))
    cb, cr = cb - 128.0, cr - 128.0
    m = _YCC2RGB_FLOAT
    return tuple(jnp.clip(y + m[k][1] * cb + m[k][2] * cr, 0.0, 255.0) for k in range(3))


def rgb_to_ycbcr(rgb: jax.Array, exact: bool = True) -> jax.Array:
    """:func:`rgb_to_ycbcr_planes` on channel-last ``[..., 3]`` arrays."""
    return jnp.stack(rgb_to_ycbcr_planes(rgb[..., 0], rgb[..., 1], rgb[..., 2], exact), axis=-1)


def ycbcr_to_rgb(ycc: jax.Array, exact: bool = True) -> jax.Array:
    """:func:`ycbcr_to_rgb_planes` on channel-last ``[..., 3]`` arrays."""
    return jnp.stack(ycbcr_to_rgb_planes(ycc[..., 0], ycc[..., 1], ycc[..., 2], exact), axis=-1)


# ----------------------------------------------------------------------------- geometry
def pad_to_multiple(x: jax.Array, multiple: int, axes: tuple[int, int] = (1, 2)) -> jax.Array:
    """Edge-replicates the two ``axes`` (bottom/right) up to multiples of ``multiple``."""
    pad = [(0, 0)] * x.ndim
    for a in axes:
        pad[a] = (0, -x.shape[a] % multiple)
    if all(p == (0, 0) for p in pad):
        return x
    return jnp.pad(x, pad, mode="edge")


def downsample_2x2(plane: jax.Array, exact: bool = True) -> jax.Array:
    """2x2 chroma downsampling of ``[B, H, W]`` (even H, W): libjpeg's ``h2v2_downsample``."""
    b, h, w = plane.shape
    s = plane.reshape(b, h // 2, 2, w // 2, 2).sum(axis=(2, 4))
    if not exact:
        return s / 4.0
    bias = jnp.where(jnp.arange(w // 2) % 2 == 0, 1.0, 2.0)
    return jnp.floor((s + bias) / 4.0)


def upsample_2x2(plane: jax.Array, exact: bool = True) -> jax.Array:
    """libjpeg's "fancy" 2x2 triangle-filter upsampling of ``[B, h, w]`` to ``[B, 2h, 2w]``.

    Each output sample weighs its nearest input 9/16, the two next-nearest 3/16 each and the
    diagonal one 1/16; outside the plane the edge sample is repeated. ``exact`` reproduces
    ``h2v2_fancy_upsample``'s integer rounding (+8 and +7 biases, ``>> 4``).
    """
    up = jnp.concatenate([plane[:, :1], plane[:, :-1]], axis=1)  # row above (edge repeated)
    down = jnp.concatenate([plane[:, 1:], plane[:, -1:]], axis=1)  # row below
    # vertical pass: output row 2i uses the row above, 2i+1 the row below (colsums, x4)
    cols = jnp.stack([3 * plane + up, 3 * plane + down], axis=2)  # [B, h, 2, w]
    b, h, _, w = cols.shape
    cols = cols.reshape(b, 2 * h, w)
    left = jnp.concatenate([cols[..., :1], cols[..., :-1]], axis=-1)
    right = jnp.concatenate([cols[..., 1:], cols[..., -1:]], axis=-1)
    if exact:
        even = jnp.floor((3 * cols + left + 8) / 16.0)
        odd = jnp.floor((3 * cols + right + 7) / 16.0)
    else:
        even, odd = (3 * cols + left) / 16.0, (3 * cols + right) / 16.0
    return jnp.stack([even, odd], axis=-1).reshape(b, 2 * h, 2 * w)
