"""Data loading: every source format, the cache, and every documented bad-input error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.core.data import CIFAR10_CLASSES, DataError, load_dataset, resolve_data_location, subset_indices
from tests.synthetic import encode, synthetic_images, write_archive, write_image_folder, write_official


def cache_files(cache: Path) -> list[Path]:
    return sorted((cache / "data").glob("*")) if (cache / "data").exists() else []


def test_image_folder_directory(image_folder: Path) -> None:
    d = load_dataset("cifar10", "test", data=image_folder)
    assert d.images.shape == (20, 32, 32, 3) and d.images.dtype == np.uint8
    assert d.classes == CIFAR10_CLASSES
    assert np.array_equal(np.bincount(d.labels), [2] * 10)
    # PNG is lossless: the decoded pixels are the ones written
    expected = synthetic_images(20, seed=1)
    assert np.array_equal(d.images, expected)


def test_image_folder_archive(image_folder: Path, tmp_path: Path) -> None:
    archive = write_archive(image_folder, tmp_path / "mine.tar.gz")
    a = load_dataset("cifar10", "train", data=archive)
    b = load_dataset("cifar10", "train", data=image_folder)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert len(a.source_sha256) == 64


def test_official_directory_and_archive(tmp_path: Path) -> None:
    import tarfile

    d = write_official(tmp_path)
    train = load_dataset("cifar10", "train", data=d)
    test = load_dataset("cifar10", "test", data=d)
    assert train.images.shape == (100, 32, 32, 3) and test.images.shape == (20, 32, 32, 3)
    assert train.classes == CIFAR10_CLASSES
    # the official layout is channel-major rows of 3072 bytes: check one pixel
    import pickle

    raw = pickle.loads((d / "test_batch").read_bytes(), encoding="bytes")[b"data"][0]
    assert tuple(test.images[0, 0, 1]) == (raw[1], raw[1024 + 1], raw[2048 + 1])
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(d, arcname="cifar-10-batches-py")
    # not the real release: its md5 check must fail with a clear error
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("cifar10", "test", data=archive)


def test_generic_image_folder_any_size(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", classes=("a", "b", "c"), per_class=1, size=(48, 40))
    d = load_dataset("imagefolder", "test", data=root)
    assert d.images.shape == (3, 48, 40, 3) and d.classes == ("a", "b", "c")
    with pytest.raises(DataError, match="not cifar10"):
        load_dataset("cifar10", "test", data=write_image_folder(tmp_path / "g", classes=("a", "b"), per_class=1))


def test_cache_is_used_and_written_atomically(image_folder: Path, isolated_cache: Path) -> None:
    load_dataset("cifar10", "test", data=image_folder)
    files = cache_files(isolated_cache)
    assert [f.name.endswith(("-test-f2.npz", "-train-f2.npz")) for f in files] == [True, True]
    assert not [f for f in files if f.name.startswith(".")]  # no temporary leftovers
    # a damaged cache is not trusted: it is decoded again
    files[0].write_bytes(b"garbage")
    again = load_dataset("cifar10", "test", data=image_folder)
    assert again.images.shape == (20, 32, 32, 3)


def test_a_damaged_cache_is_detected_by_its_checksum_and_repaired(image_folder: Path, isolated_cache: Path) -> None:
    first = load_dataset("cifar10", "test", data=image_folder)
    path = next(f for f in cache_files(isolated_cache) if "-test-" in f.name)
    raw = bytearray(path.read_bytes())
    for offset in (-4000, -3000, -2000, -1000):  # 4 flipped bytes inside the image array
        raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    again = load_dataset("cifar10", "test", data=image_folder)  # no BadZipFile, no wrong pixels
    np.testing.assert_array_equal(again.images, first.images)
    from bench.core.data import _read_cache

    assert _read_cache(path, "cifar10", "test").images.shape == first.images.shape  # repaired on disk


def test_stale_temporaries_are_swept_and_fresh_ones_kept(image_folder: Path, isolated_cache: Path) -> None:
    import os
    import time

    load_dataset("cifar10", "test", data=image_folder)
    stale = isolated_cache / "data" / ".cifar10-abc-test.npz.x1.tmp"
    fresh = isolated_cache / "data" / ".cifar10-abc-test.npz.x2.tmp"
    for f in (stale, fresh):
        f.write_bytes(b"0" * 1000)
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    load_dataset("cifar10", "test", data=image_folder)
    assert not stale.exists() and fresh.exists()


def test_an_unwritable_cache_costs_a_warning_not_the_run(image_folder: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("SHIELDBENCH_CACHE", str(blocker))
    with pytest.warns(UserWarning, match="cannot write the data cache .* continuing without it"):
        d = load_dataset("cifar10", "test", data=image_folder)
    assert d.images.shape == (20, 32, 32, 3)


def test_missing_location_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        load_dataset("cifar10", "test", data=tmp_path / "nowhere")
    monkeypatch.setenv("SHIELDBENCH_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(DataError, match=r"elsewhere \(from \$SHIELDBENCH_DATA\)"):
        resolve_data_location()


def test_missing_split_directory(image_folder: Path) -> None:
    import shutil

    shutil.rmtree(image_folder / "test")
    with pytest.raises(DataError, match="test"):
        load_dataset("cifar10", "train", data=image_folder)


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_bad_image_is_named_and_no_cache_left(image_folder: Path, isolated_cache: Path, damage: str) -> None:
    bad = image_folder / "test" / "cat" / "0001.png"
    if damage == "corrupt":
        bad.write_bytes(b"this is not an image")
    else:
        bad.write_bytes(encode(synthetic_images(1)[0], "JPEG")[:200])
        bad.rename(bad := bad.with_suffix(".jpg"))
    with pytest.raises(DataError, match=r"cat/0001\.(png|jpg).*corrupt or truncated"):
        load_dataset("cifar10", "test", data=image_folder)
    assert cache_files(isolated_cache) == []


def test_wrong_image_size(image_folder: Path, isolated_cache: Path) -> None:
    (image_folder / "train" / "dog" / "0000.png").write_bytes(encode(synthetic_images(1, (32, 30))[0]))
    with pytest.raises(DataError, match=r"dog/0000\.png: wrong image size 30x32, expected 32x32"):
        load_dataset("cifar10", "train", data=image_folder)
    assert cache_files(isolated_cache) == []


def test_differing_class_sets(tmp_path: Path, isolated_cache: Path) -> None:
    root = write_image_folder(tmp_path / "f", classes=("a", "b"), per_class=1)
    (root / "test" / "b").rename(root / "test" / "z")
    with pytest.raises(DataError, match=r"different class sets.*only in train: \['b'\].*only in test: \['z'\]"):
        load_dataset("imagefolder", "test", data=root)
    assert cache_files(isolated_cache) == []


def test_checksum_mismatch_against_md5sums(image_folder: Path, tmp_path: Path) -> None:
    archive = write_archive(image_folder, tmp_path / "mine.tar.gz")
    (tmp_path / "MD5SUMS").write_text(f"{'0' * 32}  mine.tar.gz\n")
    with pytest.raises(DataError, match="mine.tar.gz: checksum mismatch"):
        load_dataset("cifar10", "test", data=archive)


def test_truncated_archive(image_folder: Path, tmp_path: Path) -> None:
    archive = write_archive(image_folder, tmp_path / "mine.tar.gz")
    archive.write_bytes(archive.read_bytes()[:300])
    with pytest.raises(DataError, match="mine.tar.gz"):
        load_dataset("cifar10", "test", data=archive)


def test_unknown_name_and_split(image_folder: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_dataset("mnist", "test", data=image_folder)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        load_dataset("cifar10", "val", data=image_folder)


def test_subset_indices_are_fixed_and_spread() -> None:
    a, b = subset_indices(10000, 1000), subset_indices(10000, 1000)
    assert np.array_equal(a, b) and len(np.unique(a)) == 1000
    assert a.max() > 9000 and a.min() < 1000  # not "the first 1000" (one class on sorted splits)
    assert np.array_equal(subset_indices(10, 50), np.arange(10))


def test_real_cifar10(real_data: Path, real_cache: Path) -> None:
    test = load_dataset("cifar10", "test", data=real_data)
    assert test.images.shape == (10000, 32, 32, 3)
    assert np.array_equal(np.bincount(test.labels), [1000] * 10)
    means = test.images.reshape(-1, 3).mean(0) / 255
    assert np.allclose(means, (0.4942, 0.4851, 0.4504), atol=0.01)
