"""``fd(preset, passes, ...)``: Feature Distillation, a DNN-oriented JPEG quantization.

Liu et al., "Feature Distillation: DNN-Oriented JPEG Compression Against Adversarial
Examples", CVPR 2019. Each 8x8 block's DCT is quantized with a table of two steps: the
accuracy-sensitive (AS) band, the ``n`` frequencies with the largest standard deviation
of DCT coefficients over benign images, gets the small step ``S2``; the rest, the
malicious-defense (MD) band, gets ``S1`` (chosen so that ``S1 > 16 eps`` on the 0..255
scale, Eq. 5). One-pass: the incoming (already JPEG-decoded) image is quantized once with
this table. Two-pass: the FD table also replaces the standard table when the raw image is
compressed, then the one-pass step follows; here that is the same quantization applied
twice (our clean CIFAR-10 images were JPEG-compressed once at q75, so one-pass sees what
the paper intends).

Presets:

* ``"paper"`` (default): the paper's design, S1 = 30, S2 = 20, n = 15, with the AS band
  ranked by the per-frequency standard deviations stored in
  ``defenses/data/fd_band_stats.json`` (computed by ``shieldbench fd-stats`` from the
  luminance of the CIFAR-10 training set; the file records how). It runs in the JPEG
  pipeline (JFIF YCbCr, level shift, libjpeg-exact integer DCT, 8-bit output), with the FD
  table for all three components and no chroma subsampling: the paper names no
  subsampling, and 4:2:0 would add a loss that is not FD's.
* ``"code"``: the released code's table (30 everywhere, 25 on the top-left 4x4, i.e. S1 =
  30, S2 = 25) and its arithmetic: per RGB channel on ``255 x`` with no level shift and no
  YCbCr, orthonormal float DCT, round-half-to-even, float output clipped to [0, 1] and not
  rounded to 8 bits. Its bug that leaves image 0 of every batch black is not reproduced.

FD is deterministic (no EOT needed). Surrogates offered to the attacker: ``"identity"``
(default), ``"cubic"`` and ``"ste"`` (the same passes in smooth float arithmetic with the
differentiable-JPEG or straight-through rounding of the quantizer).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bench.core.transform import Images, Transform, check_surrogate, register_transform
from defenses import dct
from defenses.jpeg import check_choice, roundtrip

BAND_STATS = Path(__file__).resolve().parent / "data" / "fd_band_stats.json"
PRESETS = {"paper": {"s1": 30, "s2": 20, "n": 15}, "code": {"s1": 30, "s2": 25, "n": 16}}


def band_std(images: np.ndarray, batch: int = 2000) -> np.ndarray:
    """Per-frequency standard deviation ``[3, 8, 8]`` of the 8x8 DCT of Y, Cb, Cr.

    Args:
        images: uint8 ``[N, H, W, 3]`` with H and W multiples of 8.
    """
    d = dct.dct_matrix().astype(np.float64)
    s1 = np.zeros((3, 8, 8))
    s2 = np.zeros((3, 8, 8))
    count = 0
    for i in range(0, len(images), batch):
        ycc = np.asarray(dct.rgb_to_ycbcr(jnp.asarray(images[i : i + batch]), exact=True), np.float64)
        n, h, w, _ = ycc.shape
        blocks = ycc.reshape(n, h // 8, 8, w // 8, 8, 3)
        coefs = np.einsum("uy,nhywxc,vx->nhwcuv", d, blocks - 128.0, d)
        s1 += coefs.sum(axis=(0, 1, 2))
        s2 += (coefs**2).sum(axis=(0, 1, 2))
        count += n * (h // 8) * (w // 8)
    mean = s1 / count
    return np.sqrt(np.maximum(s2 / count - mean**2, 0.0))


def write_band_stats(images: np.ndarray, provenance: dict[str, Any], path: Path = BAND_STATS) -> dict[str, Any]:
    """Computes :func:`band_std` and stores it with ``provenance`` (atomically)."""
    from bench.core.io import atomic_write_json

    std = band_std(images)
    record = {
        "description": "std of 8x8 DCT coefficients (0..255 scale, level-shifted JFIF YCbCr) per frequency, "
                       "[component][u][v]; Feature Distillation ranks the luminance (component 0)",
        "std": np.round(std, 4).tolist(),
        "images": int(len(images)),
        "created": datetime.date.today().isoformat(),
        **provenance,
    }
    atomic_write_json(path, record)
    return record


def as_band(n: int, path: Path = BAND_STATS) -> np.ndarray:
    """Boolean ``[8, 8]`` mask of the ``n`` luminance frequencies with the largest std."""
    std = np.asarray(json.loads(path.read_text())["std"])[0]
    order = np.argsort(-std.ravel(), kind="stable")
    mask = np.zeros(64, bool)
    mask[order[:n]] = True
    return mask.reshape(8, 8)


def fd_table(preset: str, s1: float, s2: float, n: int) -> np.ndarray:
    """The 8x8 FD quantization table of a preset."""
    if preset == "code":
        table = np.full((8, 8), float(s1))
        table[:4, :4] = s2
        return table
    return np.where(as_band(n), float(s2), float(s1))


@register_transform("fd")
@dataclasses.dataclass(frozen=True, repr=False)
class FeatureDistillation(Transform):
    """Feature Distillation quantization (one- or two-pass) with the paper's or the code's table.

    Attributes:
        preset: "paper" or "code" (see the module docstring).
        passes: 1 (one-pass) or 2 (two-pass).
        s1: MD-band step (``None``: the preset's, 30).
        s2: AS-band step (``None``: the preset's, 20 for "paper", 25 for "code").
        n: AS-band size for "paper" (``None``: 15); "code" always uses the top-left 4x4.

    Surrogates: "identity", "cubic" and "ste".
    """

    surrogates = ("identity", "cubic", "ste")

    preset: str = "paper"
    passes: int = 1
    s1: float | None = None
    s2: float | None = None
    n: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.preset, tuple(PRESETS), "preset")
        if self.passes not in (1, 2):
            raise ValueError(f"passes must be 1 or 2, got {self.passes}")
        s1, s2, n = self.steps()
        if s1 <= 0 or s2 <= 0:
            raise ValueError(f"quantization steps must be positive, got s1={s1}, s2={s2}")
        if self.preset == "paper" and (s1 != int(s1) or s2 != int(s2) or not 1 <= n <= 64):
            raise ValueError(f"the paper preset needs integer steps and 1 <= n <= 64, got s1={s1}, s2={s2}, n={n}")
        if self.preset == "code" and self.n is not None:
            raise ValueError("n applies to the paper preset only (the code preset's band is the top-left 4x4)")

    def steps(self) -> tuple[float, float, int]:
        """The effective ``(s1, s2, n)``."""
        p = PRESETS[self.preset]
        return (p["s1"] if self.s1 is None else self.s1, p["s2"] if self.s2 is None else self.s2,
                p["n"] if self.n is None else self.n)

    def table(self) -> np.ndarray:
        """The 8x8 quantization table."""
        return fd_table(self.preset, *self.steps())

    def _once(self, x: Images, exact: bool, rounding: str) -> Images:
        table = jnp.asarray(self.table(), jnp.float32)
        if self.preset == "paper":
            return roundtrip(x, table, table, "4:4:4", exact=exact, rounding=rounding)
        b, h, w, c = x.shape
        planes = dct.pad_to_multiple(x * 255.0, 8).transpose(0, 3, 1, 2)
        hp, wp = planes.shape[2], planes.shape[3]
        planes = planes.reshape(b * c, hp, wp)
        q = dct.quantize(dct.block_dct(planes), dct.tile_table(table, hp, wp),
                         "even" if exact else rounding)
        out = dct.block_idct(q).reshape(b, c, hp, wp).transpose(0, 2, 3, 1)[:, :h, :w]
        return jnp.clip(out / 255.0, 0.0, 1.0)

    def __call__(self, x: Images, key: jax.Array) -> Images:
        del key
        for _ in range(self.passes):
            x = self._once(x, True, "exact")
        return x

    def approx(self, x: Images, key: jax.Array, surrogate: str = "identity") -> Images:
        """The "cubic" and "ste" surrogates: the passes in smooth float arithmetic with that rounding."""
        check_surrogate(self, surrogate)
        if surrogate not in ("cubic", "ste"):
            return super().approx(x, key, surrogate)
        for _ in range(self.passes):
            x = self._once(x, False, surrogate)
        return x
