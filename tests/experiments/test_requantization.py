"""The requantization diagnostic on synthetic images: once-compressed images sit on q50's boundaries."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bench.experiments.requantization import boundary_share, boundary_shares, luma_coefficients


def _jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    out = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="JPEG", quality=quality, subsampling=2)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return np.stack(out)


@pytest.fixture(scope="module")
def raw() -> np.ndarray:
    rng = np.random.default_rng(0)
    smooth = rng.uniform(0, 255, (24, 8, 8, 3)).repeat(4, 1).repeat(4, 2)  # blocky content + texture
    return np.clip(smooth + rng.normal(0, 25, smooth.shape), 0, 255).astype(np.uint8)


def test_uncompressed_images_are_spread_evenly(raw: np.ndarray) -> None:
    for q, share in boundary_shares(raw, (90, 75, 50, 20)).items():
        assert 0.07 < share < 0.13, (q, share)


def test_q75_images_sit_on_q50_boundaries_not_on_q75(raw: np.ndarray) -> None:
    once = _jpeg(raw, 75)
    shares = boundary_shares(once, (75, 60, 50, 40))
    assert shares[75] < 0.05  # re-quantizing at the same quality: residues near 0, not 0.5
    assert shares[50] > 0.18  # odd multiples of a q75 step lie between two q50 levels; even spread: 0.10
    assert shares[50] > 2 * max(shares[60], shares[40])


def test_float_and_uint8_inputs_agree(raw: np.ndarray) -> None:
    np.testing.assert_allclose(luma_coefficients(raw), luma_coefficients(raw.astype(np.float32) / 255), atol=1e-3)
    assert boundary_share(raw, 50) == boundary_shares(raw, (50,))[50]


@pytest.mark.parametrize("shape", [(2, 32, 32), (2, 4, 32, 3), (2, 32, 32, 1)])
def test_bad_shapes_are_named(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        luma_coefficients(np.zeros(shape, np.uint8))


def test_bad_width() -> None:
    with pytest.raises(ValueError, match="width"):
        boundary_shares(np.zeros((1, 8, 8, 3), np.uint8), (50,), width=0.5)
