"""``jpeg(quality, subsampling)``: a lossy JPEG round trip, faithful to libjpeg.

JPEG compression as a defense: Dziugaite et al. 2016, Das et al. 2017 ("Keeping the bad
guys out"), SHIELD (Das et al., KDD 2018, which uses q = 80 and 4:2:0 by default). The
entropy coding stage is lossless, so the round trip is encode-until-quantization then
decode: pad to whole MCUs by edge replication, RGB -> YCbCr, 4:2:0 chroma downsampling,
level shift, 8x8 DCT, quantize with the IJG-scaled Annex K tables, dequantize, IDCT, round
and clamp, fancy upsampling, YCbCr -> RGB, crop. Every stage reproduces libjpeg's integer
arithmetic, including its integer "islow" DCT (see ``defenses/dct.py``).

Measured fidelity against Pillow's save + load at the same quality and subsampling is in
``tests/test_jpeg.py`` and ``python -m bench.perf.jpeg_fidelity`` (mean absolute difference
in grey levels; the issue's bound is 0.5 for q >= 20 and 1.0 for q = 10).

BPDA surrogates (``surrogate=``): ``"identity"`` (default, the classic BPDA choice for
JPEG), ``"cubic"`` (the differentiable JPEG of Shin & Song 2017: the same pipeline in float
with ``round(x) + (x - round(x))**3`` for the quantizer) and ``"ste"`` (straight-through
rounding). Input levels are ``round(255 x)``, as when the image is saved as 8-bit.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from bench.transform import Images, Transform, register_transform
from defenses import dct

SUBSAMPLINGS = ("4:2:0", "4:4:4")
SURROGATES = ("identity", "cubic", "ste")


def _code_plane(plane: jax.Array, table: jax.Array, exact: bool, rounding: str) -> jax.Array:
    """Level shift, DCT, quantize/dequantize, IDCT, (round and clamp) one ``[B, H, W]`` plane."""
    if exact:
        b, h, w = plane.shape
        scaled = dct.fdct_islow(dct.to_blocks(plane.astype(jnp.int32) - 128))
        rec = dct.idct_islow(dct.quantize_islow(scaled, table))
        return dct.from_blocks(rec, b, h, w).astype(jnp.float32)
    if table.ndim == 3:  # per-block tables in planar layout -> image layout
        table = dct.from_blocks(table, plane.shape[0], plane.shape[1], plane.shape[2])
    coefs = dct.block_dct(plane - 128.0)
    rec = dct.block_idct(dct.quantize(coefs, table, rounding)) + 128.0
    return jnp.clip(rec, 0.0, 255.0)


def roundtrip(
    x: Images,
    luma_table: jax.Array,
    chroma_table: jax.Array,
    subsampling: str = "4:2:0",
    exact: bool = True,
    rounding: str = "exact",
    table_layout: str = "block",
) -> Images:
    """The JPEG round trip of ``x`` ``[B, H, W, C]`` (C = 1 or 3) in [0, 1] with given tables.

    Args:
        x: images in [0, 1].
        luma_table: ``[8, 8]`` table, or, with ``table_layout="blocks"``, per-block tables in
            the planar layout ``[8, 8, N]`` of ``dct.to_blocks`` for the padded luma plane.
        chroma_table: the same for the (subsampled) chroma planes.
        subsampling: ``"4:2:0"`` or ``"4:4:4"``.
        exact: reproduce libjpeg's integer arithmetic (input levels rounded to 0..255);
            ``False`` gives the smooth float pipeline for surrogates.
        rounding: quantizer rounding, ``"exact"``, ``"cubic"`` or ``"ste"``.
        table_layout: ``"block"`` (one 8x8 table for every block) or ``"blocks"``.

    Returns:
        Decoded images, same shape, float32 in [0, 1].
    """
    b, h, w, c = x.shape
    if c not in (1, 3):
        raise ValueError(f"JPEG needs 1 or 3 channels, got images of shape {x.shape}")
    levels = x * 255.0
    if exact:
        levels = jnp.clip(jnp.floor(levels + 0.5), 0.0, 255.0)
    sub = subsampling == "4:2:0" and c == 3
    # planar [C, B, H, W] from here on: every stage then reads contiguous planes
    planes = dct.pad_to_multiple(levels.transpose(3, 0, 1, 2), 16 if sub else 8, axes=(2, 3))
    hp, wp = planes.shape[2], planes.shape[3]

    def tables(table, ph, pw):
        if table_layout == "blocks":  # planar per-block tables [8, 8, N]
            return table
        return table if exact else dct.tile_table(table, ph, pw)

    if c == 1:
        y = _code_plane(planes[0], tables(luma_table, hp, wp), exact, rounding)
        return (y[:, :h, :w, None] / 255.0).astype(jnp.float32)
    y, cb, cr = dct.rgb_to_ycbcr_planes(planes[0], planes[1], planes[2], exact)
    y = _code_plane(y, tables(luma_table, hp, wp), exact, rounding)[:, :h, :w]
    chroma = []
    for plane in (cb, cr):
        if sub:
            plane = dct.downsample_2x2(plane, exact)
            coded = _code_plane(plane, tables(chroma_table, hp // 2, wp // 2), exact, rounding)
            ch, cw = -(-h // 2), -(-w // 2)  # the decoder sees ceil(H/2) x ceil(W/2) samples
            plane = dct.upsample_2x2(coded[:, :ch, :cw], exact)
        else:
            plane = _code_plane(plane, tables(chroma_table, hp, wp), exact, rounding)
        chroma.append(plane[:, :h, :w])
    rgb = dct.ycbcr_to_rgb_planes(y, *chroma, exact=exact)
    return (jnp.stack(rgb, axis=-1) / 255.0).astype(jnp.float32)


def check_choice(value: str, choices: tuple[str, ...], field: str) -> None:
    if value not in choices:
        raise ValueError(f"{field} must be one of {choices}, got {value!r}")


@register_transform("jpeg")
@dataclasses.dataclass(frozen=True, repr=False)
class JPEG(Transform):
    """JPEG round trip at IJG ``quality`` (1..100) with ``subsampling`` "4:2:0" or "4:4:4".

    Attributes:
        quality: IJG quality; the Annex K tables are scaled as libjpeg does.
        subsampling: chroma subsampling ("4:2:0" is Pillow's and SHIELD's default).
        surrogate: BPDA surrogate: "identity", "cubic" (differentiable JPEG) or "ste".
    """

    spec_fields = ("quality",)

    quality: int = 75
    subsampling: str = "4:2:0"
    surrogate: str = "identity"

    def __post_init__(self) -> None:
        dct.quality_scale(int(self.quality))
        if not isinstance(self.quality, int) or isinstance(self.quality, bool):
            raise ValueError(f"quality must be an integer, got {self.quality!r}")
        check_choice(self.subsampling, SUBSAMPLINGS, "subsampling")
        check_choice(self.surrogate, SURROGATES, "surrogate")

    def tables(self) -> tuple[jax.Array, jax.Array]:
        """The (luma, chroma) quantization tables at this quality."""
        return (jnp.asarray(dct.scaled_table(dct.LUMA_TABLE, self.quality), jnp.float32),
                jnp.asarray(dct.scaled_table(dct.CHROMA_TABLE, self.quality), jnp.float32))

    def __call__(self, x: Images, key: jax.Array) -> Images:
        del key
        return roundtrip(x, *self.tables(), self.subsampling)

    def approx(self, x: Images, key: jax.Array) -> Images:
        del key
        if self.surrogate == "identity":
            return x
        return roundtrip(x, *self.tables(), self.subsampling, exact=False, rounding=self.surrogate)
