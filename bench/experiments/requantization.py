"""Requantization: how close images' DCT coefficients sit to a JPEG quality's rounding boundaries.

A diagnostic for JPEG defenses evaluated on images that were JPEG-compressed before, as this
project's CIFAR-10 copy was (once, at q75 with 4:2:0 chroma; ``../shared/data/README.md``). Its
luma DCT coefficients still sit near integer multiples of the q75 quantization table. The IJG
q50 table is (up to integer rounding) exactly twice the q75 table, so every odd multiple of a
q75 step lies halfway between two q50 levels: re-compressing at q50 rounds those coefficients on
a knife edge, and a perturbation far below the quantization step decides which way each one
goes. There the JPEG "defense" amplifies a small adversarial perturbation to half a
quantization step instead of removing it. This is the double-compression effect known from
JPEG forensics; it is a property of the data, and would not show on a lossless CIFAR-10 copy.

:func:`boundary_share` measures it: the share of luma coefficients that lie within ``width``
quantization steps of a rounding boundary at a quality (coefficients of at least one step).
With rounding residues spread evenly the share is ``2 * width`` (10% for the default 0.05); a share far above that marks a quality
at which a JPEG defense is unusually fragile on this data. ``shield_report`` prints it beside
the JPEG rows' accuracies. Pure numpy (a few seconds for 1,000 CIFAR-10 images).
"""

from __future__ import annotations

import numpy as np

from defenses.dct import LUMA_TABLE, dct_matrix, scaled_table

_LUMA = np.array([0.299, 0.587, 0.114])  # JFIF Y from RGB


def luma_coefficients(images: np.ndarray) -> np.ndarray:
    """Orthonormal 8x8 block DCT of the level-shifted JFIF luma (the coefficients JPEG quantizes).

    Args:
        images: uint8 ``[B, H, W, 3]`` levels 0..255 (or float32 in [0, 1]); only whole 8x8
            blocks from the top-left corner are used, as a JPEG encoder aligns them.

    Returns:
        ``[N, 8, 8]`` float64 coefficients, one 8x8 array per block.

    Raises:
        ValueError: for a shape other than ``[B, H, W, 3]`` with H, W >= 8.
    """
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] < 8 or x.shape[2] < 8:
        raise ValueError(f"expected RGB images [B, H, W, 3] with H, W >= 8, got shape {x.shape}")
    levels = x.astype(np.float64) * (255.0 if x.dtype.kind == "f" else 1.0)
    b, h, w = x.shape[0], x.shape[1] // 8 * 8, x.shape[2] // 8 * 8
    y = levels[:, :h, :w] @ _LUMA - 128.0
    blocks = y.reshape(b, h // 8, 8, w // 8, 8).transpose(0, 1, 3, 2, 4).reshape(-1, 8, 8)
    d = dct_matrix().astype(np.float64)
    return d @ blocks @ d.T


def boundary_shares(images: np.ndarray, qualities: tuple[int, ...], width: float = 0.05) -> dict[int, float]:
    """Share of luma DCT coefficients within ``width`` steps of a rounding boundary, per quality.

    Only coefficients of at least one quantization step count, so the boundaries are those at
    1.5, 2.5, ... steps: at the first one (0.5 steps) coefficient densities fall so steeply
    that even uncompressed images crowd there. An even spread of rounding residues gives
    ``2 * width`` (measured 0.087-0.103 on synthetic uncompressed images, width 0.05).

    Args:
        images: uint8 ``[B, H, W, 3]`` (or float32 in [0, 1]).
        qualities: IJG JPEG qualities, 1..100 (the luma table libjpeg uses at each).
        width: half-width of the band around each boundary, in quantization steps, in (0, 0.5).

    Returns:
        quality -> share in [0, 1] (``nan`` if no coefficient reaches one step).
    """
    if not 0 < width < 0.5:
        raise ValueError(f"width must be in (0, 0.5) quantization steps, got {width}")
    coefs = luma_coefficients(images)
    out = {}
    for q in qualities:
        mag = np.abs(coefs / scaled_table(LUMA_TABLE, q))
        eligible = mag >= 1.0
        near = np.abs(mag - np.floor(mag) - 0.5) < width
        n = int(eligible.sum())
        out[q] = float((near & eligible).sum() / n) if n else float("nan")
    return out


def boundary_share(images: np.ndarray, quality: int, width: float = 0.05) -> float:
    """:func:`boundary_shares` for one quality."""
    return boundary_shares(images, (quality,), width)[quality]
