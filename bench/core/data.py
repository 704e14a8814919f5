"""Datasets: CIFAR-10 (and any image-folder dataset) decoded once into an atomic cache.

Sources, detected from what the data location holds:

(a) an image-folder archive ``*.tar.gz`` with ``<split>/<class>/*.(png|jpg)`` members, such as
    ``cifar10-jpeg.tar.gz`` (the default development copy: CIFAR-10 re-encoded as JPEG q75
    4:2:0, so "clean" images have been JPEG-compressed once);
(b) the official python release ``cifar-10-python.tar.gz`` or its extracted
    ``cifar-10-batches-py/`` (lossless);
(c) an image-folder directory ``<split>/<class>/*.(png|jpg|jpeg)`` (the ImageNet layout).

``cifar10`` decodes both splits at once and checks them (32x32, the ten classes, the same
class set). ``imagefolder`` decodes only the split asked for (``train``, ``val`` or ``test``;
an ImageNet validation folder alone is enough) and checks that every split present has the
same class set; labels index the sorted class names (torchvision's ``ImageFolder`` order, which
ImageNet models' outputs follow). Its images are either all of one size, or of any size with
``image_size`` (and ``resize``): the ImageNet evaluation crop (:func:`fit_image`).

The data location is, in order: the explicit ``data`` argument (CLI ``--data``), then
``$SHIELDBENCH_DATA``, then ``../shared/data`` beside the checkout. Decoded arrays are
cached under ``$SHIELDBENCH_CACHE`` (default ``~/.cache/shieldbench``) as uncompressed
``.npz`` with the source checksum and the Pillow version; the cache is keyed by the source's
fingerprint and written atomically, so a failed decode never leaves a partial file. It repairs
itself: every read verifies the arrays against the sha256 its metadata records, and a damaged
file is decoded again and replaced; temporaries left by a killed decode are swept after an
hour; a cache that cannot be written costs one warning and the run goes on without it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tarfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

from bench.core.io import atomic_write_bytes, cache_root, sha256_bytes, sweep_stale_temps

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
OFFICIAL_ARCHIVE = "cifar-10-python.tar.gz"
OFFICIAL_DIR = "cifar-10-batches-py"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")
IMAGEFOLDER_SPLITS = ("train", "val", "test")
CACHE_FORMAT = 2  # 2: meta records the arrays' sha256, verified on every read


class DataError(Exception):
    """A dataset could not be found, read or trusted; the message names the file and problem."""


@dataclass(frozen=True)
class Dataset:
    """A decoded split.

    Attributes:
        name: dataset name, e.g. ``"cifar10"``.
        split: ``"train"``, ``"test"`` (or ``"val"``, image folders).
        images: uint8 ``[N, H, W, C]``.
        labels: int32 ``[N]`` indexes into ``classes``.
        classes: class names in label order.
        source: the file or directory the images were decoded from.
        source_sha256: checksum of the source (archive bytes, or every image file's bytes).
        pillow_version: the Pillow that decoded the images (JPEG decoding differs slightly
            between libjpeg builds).
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str
    source_sha256: str
    pillow_version: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def as_float(self, indices: np.ndarray | slice | None = None) -> np.ndarray:
        """Returns float32 ``[N, H, W, C]`` images in [0, 1] (all, or the given indices)."""
        x = self.images if indices is None else self.images[indices]
        return x.astype(np.float32) / np.float32(255.0)


# ----------------------------------------------------------------------------- locations
def default_data_dir() -> Path:
    """The ``shared/data`` directory beside the checkout (or beside the current directory)."""
    here = Path(__file__).resolve().parents[2]
    for root in (here, Path.cwd()):
        candidate = root.parent / "shared" / "data"
        if candidate.exists():
            return candidate
    return here.parent / "shared" / "data"


def resolve_data_location(data: str | os.PathLike[str] | None = None) -> Path:
    """Resolves the data location: ``data``, else ``$SHIELDBENCH_DATA``, else the default.

    Raises:
        DataError: if the resolved location does not exist.
    """
    if data is not None:
        path, origin = Path(data), "--data"
    elif os.environ.get("SHIELDBENCH_DATA"):
        path, origin = Path(os.environ["SHIELDBENCH_DATA"]), "$SHIELDBENCH_DATA"
    else:
        path, origin = default_data_dir(), "the default location"
    if not path.exists():
        raise DataError(
            f"data location {path} (from {origin}) does not exist; point --data or "
            "$SHIELDBENCH_DATA at a CIFAR-10 archive or image-folder directory, or run "
            "`shieldbench data fetch cifar10`"
        )
    return path.expanduser().resolve()


def find_source(location: Path) -> Path:
    """Picks the dataset source inside a data location (see the module docstring)."""
    if location.is_file() or location.name == OFFICIAL_DIR or any((location / s).is_dir() for s in ("test", "val")):
        return location
    for name in (OFFICIAL_ARCHIVE, OFFICIAL_DIR, "cifar10-jpeg.tar.gz"):
        if (location / name).exists():
            return location / name
    archives = sorted(location.glob("*.tar.gz"))
    if len(archives) == 1:
        return archives[0]
    raise DataError(
        f"{location}: no dataset found; expected {OFFICIAL_ARCHIVE}, {OFFICIAL_DIR}/, an "
        "image-folder archive (*.tar.gz) or an image-folder directory with test/ (or val/)"
    )


# ----------------------------------------------------------------------------- checksums
def _file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_md5sums(path: Path) -> None:
    """Checks ``path`` against an ``MD5SUMS`` file beside it, or the official release's md5.

    Raises:
        DataError: on a checksum mismatch.
    """
    expected = None
    sums = path.parent / "MD5SUMS"
    if sums.is_file():
        for line in sums.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == path.name:
                expected = parts[0].lower()
    if expected is None and path.name == OFFICIAL_ARCHIVE:
        expected = CIFAR10_MD5
    if expected is not None:
        actual = _file_digest(path, "md5")
        if actual != expected:
            raise DataError(f"{path}: checksum mismatch: md5 is {actual}, expected {expected}")


def _files(source: Path, split: str | None) -> list[Path]:
    """The source's files: the archive itself, every file of the directory, or of one split's directory."""
    if source.is_file():
        return [source]
    return sorted(p for p in (source / split if split else source).rglob("*") if p.is_file())


def _fingerprint(source: Path, split: str | None = None) -> str:
    """A cheap identity of the source (or of one split's directory) for cache keys: size and mtime of every file."""
    h = hashlib.sha256(str(source).encode())
    files = _files(source, split)
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(source) if p != source else p.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- decoding
Fit = tuple[int, int]  # (image_size, resize): the evaluation crop of images of any size


def fit_image(im: Image.Image, image_size: int, resize: int) -> Image.Image:
    """The standard ImageNet evaluation crop of an image of any size.

    The shorter side is resized to ``resize`` (Pillow's antialiased bilinear filter, as
    torchvision's ``Resize(resize)`` on a PIL image, the longer side truncated to an integer as
    there), then the centre ``image_size`` x ``image_size`` square is cut out (torchvision's
    ``CenterCrop``: offsets ``round((side - image_size) / 2)``). ``resize = 256``,
    ``image_size = 224`` is the usual single-crop ImageNet evaluation (torchvision's reference
    scripts; the 224x224 crops of He et al., CVPR 2016). An image whose shorter side is
    already ``resize`` is cropped without resampling, so a folder of ``image_size`` squares with
    ``resize = image_size`` is decoded exactly.

    Args:
        im: the decoded image (any mode Pillow can resize).
        image_size: side of the square crop, ``<= resize``.
        resize: the shorter side before cropping.

    Returns:
        The ``image_size`` x ``image_size`` crop.
    """
    w, h = im.size
    if min(w, h) != resize:
        size = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
        im = im.resize(size, Image.BILINEAR)
        w, h = im.size
    top, left = int(round((h - image_size) / 2.0)), int(round((w - image_size) / 2.0))
    return im.crop((left, top, left + image_size, top + image_size))


def _decode_image(data: bytes, where: str, fit: Fit | None = None) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgb = im.convert("RGB")
    except Exception as e:  # Pillow raises several types for corrupt or truncated files
        raise DataError(f"{where}: corrupt or truncated image ({e})") from None
    if fit is not None:
        rgb = fit_image(rgb, *fit)
    return np.asarray(rgb, dtype=np.uint8)


def _image_folder_members(source: Path, known: tuple[str, ...], wanted: tuple[str, ...]
                          ) -> Iterator[tuple[str, str, str, bytes | None]]:
    """Yields ``(split, class, where, bytes)`` for every image of the ``known`` splits of an
    archive or directory; the bytes only for the ``wanted`` splits (``None`` for the others,
    whose class names are still checked, without reading them)."""
    if source.is_file():
        try:
            with tarfile.open(source, "r:*") as tar:
                for member in tar:
                    parts = Path(member.name).parts
                    if not member.isfile() or Path(member.name).suffix.lower() not in IMAGE_SUFFIXES:
                        continue
                    if len(parts) < 3 or parts[-3] not in known:
                        continue
                    data = None
                    if parts[-3] in wanted:
                        f = tar.extractfile(member)
                        assert f is not None
                        data = f.read()
                    yield parts[-3], parts[-2], f"{source}:{member.name}", data
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DataError(f"{source}: unreadable archive ({e})") from None
    else:
        for split in known:
            for path in sorted((source / split).rglob("*")) if (source / split).is_dir() else ():
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                    yield split, path.parent.name, str(path), path.read_bytes() if split in wanted else None


def _decode_image_folder(source: Path, image_size: tuple[int, int] | None, splits: tuple[str, ...] = SPLITS,
                         known: tuple[str, ...] = SPLITS, fit: Fit | None = None) -> dict[str, tuple]:
    """Decodes ``splits`` of an image folder; every split of ``known`` that is present must have
    the same class set. Images must share one size (``image_size``, else the first one's)
    unless ``fit`` crops them all to one."""
    if source.is_dir():
        missing = [s for s in splits if not (source / s).is_dir()]
        if missing:
            raise DataError(f"{source}: missing split directory {source / missing[0]}")
    items: dict[str, list[tuple[str, str, np.ndarray]]] = {s: [] for s in splits}
    class_sets: dict[str, set[str]] = {}
    for split, cls, where, data in _image_folder_members(source, known, splits):
        class_sets.setdefault(split, set()).add(cls)
        if data is None:
            continue
        img = _decode_image(data, where, fit)
        if image_size is None:
            image_size = img.shape[:2]
        if img.shape[:2] != tuple(image_size):
            hint = "" if known == SPLITS else "; set image_size (and resize) in the protocol to crop images of any size"
            raise DataError(
                f"{where}: wrong image size {img.shape[1]}x{img.shape[0]}, "
                f"expected {image_size[1]}x{image_size[0]}{hint}"
            )
        items[split].append((cls, where, img))
    for s in splits:
        if not items[s]:
            raise DataError(f"{source}: split {s!r} has no images")
    present = [s for s in known if s in class_sets]
    for s in present[1:]:
        first = present[0]
        if class_sets[s] != class_sets[first]:
            only_first, only_s = sorted(class_sets[first] - class_sets[s]), sorted(class_sets[s] - class_sets[first])
            raise DataError(
                f"{source}: the splits have different class sets (only in {first}: {only_first}, only in {s}: {only_s})"
            )
    classes = tuple(sorted(class_sets[present[0]]))
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for s in splits:
        ordered = sorted(items.pop(s), key=lambda t: (t[0], t[1]))
        images = np.empty((len(ordered), *ordered[0][2].shape), np.uint8)
        labels = np.array([index[c] for c, _, _ in ordered], np.int32)
        for i, (_, _, img) in enumerate(ordered):  # filled in place: a large split is never held twice
            images[i] = img
            ordered[i] = None  # type: ignore[call-overload]
        out[s] = (images, labels, classes)
    return out


def _decode_official(source: Path) -> dict[str, tuple]:
    names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    blobs: dict[str, bytes] = {}
    if source.is_dir():
        for n in [*names["train"], *names["test"], "batches.meta"]:
            p = source / n
            if not p.is_file():
                raise DataError(f"{p}: missing file of the official CIFAR-10 release")
            blobs[n] = p.read_bytes()
    else:
        try:
            with tarfile.open(source, "r:gz") as tar:
                for member in tar:
                    if member.isfile():
                        f = tar.extractfile(member)
                        assert f is not None
                        blobs[Path(member.name).name] = f.read()
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DataError(f"{source}: unreadable archive ({e})") from None

    def unpickle(n: str) -> dict:
        if n not in blobs:
            raise DataError(f"{source}: {n} missing from the official CIFAR-10 release")
        try:
            return pickle.loads(blobs[n], encoding="bytes")
        except Exception as e:
            raise DataError(f"{source}:{n}: corrupt batch file ({e})") from None

    meta = unpickle("batches.meta")
    classes = tuple(c.decode() for c in meta[b"label_names"])
    out = {}
    for split, files in names.items():
        xs, ys = [], []
        for n in files:
            d = unpickle(n)
            data = np.asarray(d[b"data"], np.uint8)
            if data.ndim != 2 or data.shape[1] != 3072:
                raise DataError(f"{source}:{n}: wrong image size: rows of {data.shape[-1]} bytes, expected 3072")
            xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(np.asarray(d[b"labels"], np.int32))
        out[split] = (np.concatenate(xs), np.concatenate(ys), classes)
    return out


def _is_official(source: Path) -> bool:
    return source.name in (OFFICIAL_DIR, OFFICIAL_ARCHIVE)


def _decode(name: str, source: Path, split: str, fit: Fit | None) -> dict[str, tuple]:
    if _is_official(source):
        if fit is not None:
            raise DataError(f"{source}: the official CIFAR-10 release holds 32x32 images; image_size and resize "
                            "apply to image folders")
        return _decode_official(source)
    if name == "cifar10":
        return _decode_image_folder(source, KNOWN[name]["image_size"])
    return _decode_image_folder(source, None, (split,), IMAGEFOLDER_SPLITS, fit)


def _per_split(name: str, source: Path) -> bool:
    """Whether one split is decoded, cached and checksummed on its own (image-folder directories)."""
    return name != "cifar10" and source.is_dir() and not _is_official(source)


def _source_sha256(source: Path, split: str | None = None) -> str:
    if source.is_file():
        return _file_digest(source, "sha256")
    h = hashlib.sha256()
    for p in _files(source, split):
        h.update(str(p.relative_to(source)).encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


# ----------------------------------------------------------------------------- public API
KNOWN = {"cifar10": {"image_size": (32, 32), "classes": CIFAR10_CLASSES}, "imagefolder": {}}


def check_fit(name: str, image_size: int | None, resize: int | None) -> Fit | None:
    """Validates ``image_size`` and ``resize`` for dataset ``name``; returns the crop, or ``None``.

    Raises:
        ValueError: naming the bad value (not positive integers, ``resize < image_size``, a
            ``resize`` without ``image_size``, or a size for ``cifar10``, whose images are 32x32).
    """
    for key, value in (("image_size", image_size), ("resize", resize)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    if image_size is None:
        if resize is not None:
            raise ValueError(f"resize={resize} needs image_size (the side of the centre crop)")
        return None
    if name == "cifar10":
        raise ValueError(f"image_size applies to imagefolder datasets; cifar10 images are 32x32, got {image_size}")
    resize = image_size if resize is None else resize
    if resize < image_size:
        raise ValueError(f"resize ({resize}) must be at least image_size ({image_size}): the crop is cut from "
                         "the resized image")
    return image_size, resize


def load_dataset(name: str = "cifar10", split: str = "test", *, data: str | os.PathLike[str] | None = None,
                 image_size: int | None = None, resize: int | None = None) -> Dataset:
    """Loads a dataset split, decoding the source once into the cache.

    Args:
        name: ``"cifar10"`` (checked: 32x32 images, the ten CIFAR-10 classes; both splits are
            decoded together) or ``"imagefolder"`` (any ``<split>/<class>/*`` layout; only
            ``split`` is decoded, the other splits present must have the same classes).
        split: ``"train"`` or ``"test"``; image folders also ``"val"``.
        data: the data location (file or directory); default ``$SHIELDBENCH_DATA``, then
            ``../shared/data`` beside the checkout.
        image_size: image folders of any image size: the side of the centre crop
            (:func:`fit_image`); ``None``: every image must already have one size.
        resize: the shorter side before cropping (default ``image_size``; 256 for the usual
            single-crop ImageNet evaluation at 224).

    Returns:
        The decoded split with uint8 ``[N, H, W, C]`` images and int32 labels.

    Raises:
        DataError: missing location, corrupt or truncated image, wrong image size, differing
            class sets between splits, checksum mismatch, or not the named dataset.
        ValueError: unknown dataset name or split, bad ``image_size`` or ``resize``.
    """
    if name not in KNOWN:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(KNOWN)}")
    splits = SPLITS if name == "cifar10" else IMAGEFOLDER_SPLITS
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; expected one of {splits}")
    fit = check_fit(name, image_size, resize)
    source = find_source(resolve_data_location(data))
    cache = _cache_path(name, source, split, fit)
    if cache.parent.is_dir():
        sweep_stale_temps(cache.parent)  # left by a decode that was killed mid-write
    if cache.is_file():
        try:
            return _read_cache(cache, name, split, fit)
        except Exception:  # damaged (bad CRC, flipped bytes, truncated): decode again, overwrite atomically
            pass
    if source.is_file():
        verify_md5sums(source)
    decoded = _decode(name, source, split, fit)
    expected_classes = KNOWN[name].get("classes")
    classes = decoded[split][2]
    if expected_classes is not None and classes != expected_classes:
        raise DataError(f"{source}: classes {list(classes)} are not {name}'s {list(expected_classes)}")
    checksum = _source_sha256(source, split if _per_split(name, source) else None)
    result = None
    for s, (images, labels, cls) in decoded.items():
        meta = {
            "format": CACHE_FORMAT, "name": name, "split": s, "classes": list(cls), "source": str(source),
            "source_sha256": checksum, "pillow_version": PIL.__version__, "arrays_sha256": _arrays_sha256(images, labels),
        }
        if fit is not None:
            meta["fit"] = list(fit)
        buf = io.BytesIO()
        np.savez(buf, images=images, labels=labels, meta=np.array(json.dumps(meta)))
        path = _cache_path(name, source, s, fit)
        try:
            atomic_write_bytes(path, buf.getvalue())
        except OSError as e:  # an unwritable cache costs speed, not the run
            warnings.warn(f"cannot write the data cache {path} ({e}); continuing without it "
                          "(set $SHIELDBENCH_CACHE to a writable directory)", stacklevel=2)
        if s == split:
            result = Dataset(name, s, images, labels, tuple(cls), str(source), checksum, PIL.__version__)
    assert result is not None
    return result


def source_tag(name: str, source: Path, split: str, fit: Fit | None = None) -> str:
    """A short file-name identity of a decoded split: the dataset, its crop (``224r256``) and a
    fingerprint of the source (of the split's directory, for image-folder directories)."""
    crop = "" if fit is None else f"-{fit[0]}r{fit[1]}"
    return f"{name}{crop}-{_fingerprint(source, split if _per_split(name, source) else None)}"


def _cache_path(name: str, source: Path, split: str, fit: Fit | None = None) -> Path:
    """Where a decoded split is cached (the format is in the name: versions never overwrite each other)."""
    return cache_root() / "data" / f"{source_tag(name, source, split, fit)}-{split}-f{CACHE_FORMAT}.npz"


def _arrays_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    return sha256_bytes(np.ascontiguousarray(images).tobytes() + np.ascontiguousarray(labels, np.int32).tobytes())


def _read_cache(path: Path, name: str, split: str, fit: Fit | None = None) -> Dataset:
    """A cached split, verified against the checksum its metadata records.

    Raises:
        ValueError (or any read error): a damaged or foreign cache file, which the caller decodes again.
    """
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if (meta.get("format") != CACHE_FORMAT or meta["name"] != name or meta["split"] != split
                or meta.get("fit") != (None if fit is None else list(fit))):
            raise ValueError("cache metadata mismatch")
        images, labels = z["images"], z["labels"]
    if images.dtype != np.uint8 or images.ndim != 4 or labels.shape != (images.shape[0],):
        raise ValueError("cache arrays malformed")
    if _arrays_sha256(images, labels) != meta.get("arrays_sha256"):
        raise ValueError("cache arrays do not match their checksum")
    return Dataset(
        name, split, images, labels.astype(np.int32), tuple(meta["classes"]), meta["source"],
        meta["source_sha256"], meta["pillow_version"],
    )


@dataclass(frozen=True)
class TrainingData:
    """The clean training images that data-built transforms learn from (quilting's patch database).

    The ``train`` split of dataset ``name`` at location ``data``, decoded at the evaluation's
    crop. The runner sets it to its protocol's dataset, data location and crop
    (:func:`use_training_data`), so such a transform learns from the dataset it is scored on;
    the default is CIFAR-10's training set at the default location.
    """

    name: str = "cifar10"
    data: str | None = None
    image_size: int | None = None
    resize: int | None = None

    def load(self) -> Dataset:
        """The decoded ``train`` split (cached like every split)."""
        return load_dataset(self.name, "train", data=self.data, image_size=self.image_size, resize=self.resize)

    def tag(self) -> str:
        """A short file-name identity: ``"cifar10"``, or the dataset, its crop and its train split's fingerprint."""
        if self.name == "cifar10":
            return "cifar10"
        source = find_source(resolve_data_location(self.data))
        return source_tag(self.name, source, "train", check_fit(self.name, self.image_size, self.resize))


_TRAINING: list[TrainingData] = [TrainingData()]


def use_training_data(training: TrainingData) -> None:
    """Sets the training images data-built transforms use from now on in this process."""
    _TRAINING[0] = training


def training_data() -> TrainingData:
    """The training images data-built transforms use (see :class:`TrainingData`)."""
    return _TRAINING[0]


def subset_indices(total: int, n: int, seed: int = 0) -> np.ndarray:
    """A fixed, sorted random subset of ``n`` of ``range(total)`` (all of them if ``n >= total``).

    Splits decoded from image folders are ordered by class, so "the first n" would be one
    class: every evaluation subset in shieldbench comes from here instead.
    """
    if n >= total:
        return np.arange(total)
    if n < 1:
        raise ValueError(f"subset size must be positive, got {n}")
    return np.sort(np.random.default_rng(seed).permutation(total)[:n])


def fetch_cifar10(dest: str | os.PathLike[str], timeout: float = 10.0) -> Path:
    """Downloads the official CIFAR-10 python release into ``dest`` and verifies its md5.

    Raises:
        DataError: when the download fails (e.g. no network) or the checksum does not match;
            nothing is left behind in either case.
    """
    import urllib.error
    import urllib.request

    dest_dir = Path(dest)
    target = dest_dir / OFFICIAL_ARCHIVE
    try:
        with urllib.request.urlopen(CIFAR10_URL, timeout=timeout) as r:
            payload = r.read()
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise DataError(
            f"could not download {CIFAR10_URL} ({getattr(e, 'reason', e)}); this machine may have "
            f"no network: copy {OFFICIAL_ARCHIVE} into {dest_dir} by hand or point --data at a copy"
        ) from None
    actual = hashlib.md5(payload).hexdigest()
    if actual != CIFAR10_MD5:
        raise DataError(f"{CIFAR10_URL}: checksum mismatch: md5 is {actual}, expected {CIFAR10_MD5}")
    atomic_write_bytes(target, payload)
    return target
