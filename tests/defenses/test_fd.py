"""``fd``: the tables of both presets, the band statistics, and the arithmetic of each preset."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.core.transform import bpda, build_transform
from tests.synthetic import synthetic_images
from defenses.fd import BAND_STATS, as_band, band_std
from tests.defenses.jpeg_ref import pillow_batch, to_levels


def test_paper_table_has_the_n_largest_std_frequencies_at_s2() -> None:
    t = build_transform("fd()")
    table = t.table()
    std = np.asarray(json.loads(BAND_STATS.read_text())["std"])[0]
    assert (table == 20).sum() == 15 and (table == 30).sum() == 49
    assert std[table == 20].min() > std[table == 30].max()
    assert table[0, 0] == 20  # DC carries the most energy
    custom = build_transform("fd(s1=40, s2=10, n=6)").table()
    assert (custom == 10).sum() == 6 and (custom == 40).sum() == 58 and as_band(6).sum() == 6


def test_code_table() -> None:
    table = build_transform("fd(preset='code')").table()
    assert (table[:4, :4] == 25).all() and (table == 30).sum() == 48


def test_band_stats_file_records_how_it_was_made() -> None:
    record = json.loads(BAND_STATS.read_text())
    assert record["command"] == "shieldbench fd-stats" and record["images"] == 50000
    assert record["split"] == "train" and len(record["source_sha256"]) == 64
    assert np.asarray(record["std"]).shape == (3, 8, 8)


def test_band_std_against_scipy() -> None:
    fft = pytest.importorskip("scipy.fft")
    imgs = synthetic_images(6, (16, 24), seed=2)
    got = band_std(imgs, batch=4)
    # reference: luma by the JFIF formula, orthonormal 2-D DCT per block
    rgb = imgs.astype(np.int64)
    y = (19595 * rgb[..., 0] + 38470 * rgb[..., 1] + 7471 * rgb[..., 2] + 32768) >> 16
    blocks = (y - 128.0).reshape(6, 2, 8, 3, 8).transpose(0, 1, 3, 2, 4).reshape(-1, 8, 8)
    coefs = fft.dctn(blocks, axes=(1, 2), norm="ortho")
    assert np.allclose(got[0], coefs.std(axis=0), atol=1e-3)


def test_paper_preset_is_libjpeg_with_the_fd_table() -> None:
    # the paper's FD is a JPEG whose quantization table is the FD table: libjpeg (through
    # Pillow's qtables) with that table for luma and chroma, no subsampling, must agree
    imgs = synthetic_images(4, (32, 40), seed=4)
    t = build_transform("fd()")
    table = [int(v) for v in t.table().ravel()]
    ref = pillow_batch(imgs, qtables=[table, table], subsampling="4:4:4")
    got = to_levels(t(jnp.asarray(imgs, jnp.float32) / 255.0, jax.random.key(0)))
    assert np.array_equal(got, ref)


def test_code_preset_arithmetic_against_scipy() -> None:
    fft = pytest.importorskip("scipy.fft")
    imgs = synthetic_images(2, (16, 16), seed=6)
    x = imgs.astype(np.float64)
    table = build_transform("fd(preset='code')").table()
    out = np.empty_like(x)
    for b in range(2):
        for c in range(3):
            for i in range(0, 16, 8):
                for j in range(0, 16, 8):
                    coef = fft.dctn(x[b, i:i + 8, j:j + 8, c], norm="ortho")
                    out[b, i:i + 8, j:j + 8, c] = fft.idctn(np.round(coef / table) * table, norm="ortho")
    ref = np.clip(out / 255.0, 0, 1)
    got = np.asarray(build_transform("fd(preset='code')")(jnp.asarray(imgs, jnp.float32) / 255.0, jax.random.key(0)))
    assert np.abs(got - ref).max() < 1e-4


@pytest.mark.parametrize("preset", ["paper", "code"])
def test_two_pass_is_the_quantization_applied_twice(preset: str) -> None:
    x = jnp.asarray(synthetic_images(2, (24, 24), seed=1), jnp.float32) / 255.0
    one, two = build_transform(f"fd(preset='{preset}')"), build_transform(f"fd(preset='{preset}', passes=2)")
    k = jax.random.key(0)
    assert np.array_equal(two(x, k), one(one(x, k), k))
    y = jax.jit(two.__call__)(x, k)
    assert y.shape == x.shape and y.dtype == jnp.float32 and 0 <= float(y.min()) and float(y.max()) <= 1
    assert np.allclose(y, two(x, k), atol=1e-6)
    assert not build_transform(f"fd(preset='{preset}')").randomized


@pytest.mark.parametrize(("spec", "surrogate"), [("fd()", "identity"), ("fd(preset='code')", "cubic"),
                                                  ("fd()", "ste")])
def test_bpda_gradient(spec: str, surrogate: str) -> None:
    t = build_transform(spec)
    x = jnp.asarray(synthetic_images(2, (16, 16), seed=3), jnp.float32) / 255.0
    g = jax.grad(lambda z: jnp.sum(jnp.sin(5 * bpda(t, surrogate)(z, jax.random.key(0)))))(x)
    assert bool(jnp.isfinite(g).all()) and float(jnp.abs(g).mean()) > 1e-3
