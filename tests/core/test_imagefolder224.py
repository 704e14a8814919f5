"""Images of any size, ImageNet-style (issue 22 item 4): a 224x224 image folder end to end.

Fast: a ``val/``-only folder, the evaluation crop of images of any size (and its cache key),
the crop keys' checks, the ``imagefolder-224`` template, the transforms at 224x224 and at the odd
225x223 (JPEG bit-exact against Pillow for both chroma subsamplings, median against scipy, TVD's
chunked loop, finite own gradients), quilting's patch database built from the folder's ``train/``
split and its chunked neighbour search, and bare transforms scored in front of the protocol's
base model. Slow: the template, shrunk, with randomly initialised ResNet-50 v2s
(``examples/resnet50v2_random.py``), through ``shieldbench run`` to the board.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from bench.core.data import DataError, TrainingData, check_fit, load_dataset, use_training_data
from bench.core.defense import build_defense
from bench.eval.protocol import ProtocolError, load_protocol, parse_protocol
from bench.core.transform import bpda, build_transform
from tests.synthetic import encode, synthetic_images
from defenses import quilting

ROOT = Path(__file__).resolve().parents[2]
KEY = jax.random.key(0)
CLASSES = ("n03", "n01", "n02")  # written unsorted: labels follow the sorted names


def write_folder(root: Path, per_split: dict[str, int], size: tuple[int, int] = (224, 224), seed: int = 0) -> Path:
    """``root/<split>/<class>/<i>.png``: smooth random images, ``per_split[split]`` per class."""
    for s, (split, per) in enumerate(per_split.items()):
        imgs = synthetic_images(per * len(CLASSES), size, seed=seed + s)
        for c, cls in enumerate(CLASSES):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(per):
                (root / split / cls / f"{i:03d}.png").write_bytes(encode(imgs[c * per + i]))
    return root


@pytest.fixture
def training():
    """Restores the default training data (and forgets databases built from folders) afterwards."""
    yield
    use_training_data(TrainingData())
    for key in [k for k in quilting._DB if len(k) > 3]:
        del quilting._DB[key]


# ----------------------------------------------------------------------------- data
def test_a_val_folder_alone_loads_at_224_with_sorted_class_labels(tmp_path: Path, isolated_cache: Path) -> None:
    root = write_folder(tmp_path / "f", {"val": 2})
    d = load_dataset("imagefolder", "val", data=root)
    assert d.images.shape == (6, 224, 224, 3) and d.classes == ("n01", "n02", "n03")
    assert d.labels.tolist() == [0, 0, 1, 1, 2, 2]
    # PNG is lossless: class n01 (written second) comes first, pixel for pixel
    assert np.array_equal(d.images[0], synthetic_images(6, (224, 224), seed=0)[2])
    assert [p.name.split("-")[-2] for p in (isolated_cache / "data").glob("*.npz")] == ["val"]
    again = load_dataset("imagefolder", "val", data=root)  # from the cache
    assert np.array_equal(again.images, d.images) and again.source_sha256 == d.source_sha256


def test_any_size_is_resized_and_centre_cropped_as_torchvision(tmp_path: Path, isolated_cache: Path) -> None:
    rng = np.random.default_rng(3)
    (tmp_path / "f" / "val" / "a").mkdir(parents=True)
    sizes = {"0.png": (260, 300), "1.jpg": (400, 240), "2.png": (256, 300), "3.png": (224, 224)}  # (H, W)
    originals = {}
    for name, (h, w) in sizes.items():
        originals[name] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(originals[name]).save(tmp_path / "f" / "val" / "a" / name)
    d = load_dataset("imagefolder", "val", data=tmp_path / "f", image_size=224, resize=256)
    assert d.images.shape == (4, 224, 224, 3)
    # 300x260 (W x H): shorter side 260 -> 256, width int(256 * 300 / 260) = 295; crop at (36, 16)
    with Image.open(tmp_path / "f" / "val" / "a" / "0.png") as im:
        ref = np.asarray(im.convert("RGB").resize((295, 256), Image.BILINEAR))[16:240, 36:260]
    assert np.array_equal(d.images[0], ref)
    # shorter side already 256: cropped without resampling (rows 16..239, columns 38..261)
    assert np.array_equal(d.images[2], originals["2.png"][16:240, 38:262])
    # resize defaults to image_size: 224x224 images come back untouched
    same = load_dataset("imagefolder", "val", data=tmp_path / "f", image_size=224)
    assert np.array_equal(same.images[3], originals["3.png"]) and not np.array_equal(same.images[0], d.images[0])
    assert len(list((isolated_cache / "data").glob("*.npz"))) == 2  # the crop is part of the cache key


def test_mixed_sizes_without_a_crop_name_the_file_and_the_fix(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", {"val": 1})
    (root / "val" / "n02" / "000.png").write_bytes(encode(synthetic_images(1, (225, 223))[0]))
    with pytest.raises(DataError, match=r"n02/000\.png: wrong image size 223x225, expected 224x224; set image_size"):
        load_dataset("imagefolder", "val", data=root)


def test_class_sets_are_checked_across_the_splits_present(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", {"train": 1, "val": 1}, size=(16, 16))
    (root / "train" / "n01").rename(root / "train" / "n00")
    with pytest.raises(DataError, match=r"only in train: \['n00'\], only in val: \['n01'\]"):
        load_dataset("imagefolder", "val", data=root)


@pytest.mark.parametrize(("name", "image_size", "resize", "message"), [
    ("imagefolder", 224, 200, r"resize \(200\) must be at least image_size \(224\)"),
    ("imagefolder", None, 256, "needs image_size"),
    ("imagefolder", 0, None, "image_size must be a positive integer, got 0"),
    ("cifar10", 224, None, "cifar10 images are 32x32"),
])
def test_bad_crops_are_refused(name: str, image_size, resize, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_fit(name, image_size, resize)


def test_the_template_validates_and_a_bad_crop_in_a_copy_names_the_file(tmp_path: Path) -> None:
    p = load_protocol("imagefolder-224")
    assert (p.dataset, p.split, p.image_size, p.resize) == ("imagefolder", "val", 224, 256)
    assert p.base == "resnet50v2-imagenet" and all(build_defense(d) for d in p.defenses)
    copy = tmp_path / "mine.toml"
    copy.write_text(Path(p.path).read_text().replace('name = "imagefolder-224"', 'name = "mine"'))
    assert parse_protocol(copy).name == "mine"
    copy.write_text(copy.read_text().replace("resize = 256", "resize = 128"))
    with pytest.raises(ProtocolError, match=rf"{re.escape(str(copy))}: resize \(128\) must be at least"):
        parse_protocol(copy)


# ----------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("shape", [(224, 224), (225, 223)])
@pytest.mark.parametrize("subsampling", ["4:2:0", "4:4:4"])
def test_jpeg_at_224_and_odd_sizes_is_pillow_bit_for_bit(shape: tuple[int, int], subsampling: str) -> None:
    from tests.defenses.jpeg_ref import pillow_batch, to_levels

    imgs = synthetic_images(1, shape, seed=shape[1])
    spec = f"jpeg(quality=75, subsampling='{subsampling}')"
    got = to_levels(jax.jit(build_transform(spec).__call__)(jnp.asarray(imgs, jnp.float32) / 255.0, KEY))
    assert np.array_equal(got, pillow_batch(imgs, quality=75, subsampling=subsampling))


def test_median_and_tvd_at_an_odd_size() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    x = jax.random.uniform(KEY, (2, 225, 223, 3))
    got = np.asarray(build_transform("median(size=3)")(x, KEY))
    assert np.array_equal(got, ndimage.median_filter(np.asarray(x), size=(1, 3, 3, 1), mode="reflect"))
    tvd = build_transform("tvd(weight=0.05, iters=5)")  # 2 images of 225x223: the chunked loop, one image a step
    assert np.allclose(tvd(x, KEY), np.concatenate([tvd(x[:1], KEY), tvd(x[1:], KEY)]), atol=1e-6)


@pytest.mark.parametrize("spec", ["median(size=3)", "tvd(weight=0.05, iters=5)", "jpeg(quality=75)"])
def test_surrogate_gradients_at_an_odd_size_are_finite(spec: str) -> None:
    t = build_transform(spec)
    x = jax.random.uniform(KEY, (1, 225, 223, 3))
    g = np.asarray(jax.jit(jax.grad(lambda z: jnp.sum(bpda(t, t.surrogates[-1])(z, KEY) ** 2)))(x))
    assert g.shape == x.shape and np.isfinite(g).all() and np.abs(g).max() > 0  # own / ste: not the identity's


def test_quilting_builds_its_database_from_the_folders_train_split(tmp_path: Path, isolated_cache: Path,
                                                                   training) -> None:
    root = write_folder(tmp_path / "f", {"train": 1, "val": 1})
    use_training_data(TrainingData("imagefolder", str(root), 224, 256))
    x = jnp.asarray(load_dataset("imagefolder", "val", data=root, image_size=224, resize=256).as_float()[:1])
    y = build_transform("quilting(db_size=50, k=2)")(x, KEY)
    assert y.shape == x.shape and 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    (path,) = (isolated_cache / "quilting").glob("*.npz")
    assert path.name.startswith("imagefolder-224r256-") and path.name.endswith("-p5-n50-s0.npz")
    with np.load(path) as z:
        patches, meta = z["patches"], json.loads(str(z["meta"]))
    assert meta["dataset"] == "imagefolder" and meta["image_size"] == 224
    train = load_dataset("imagefolder", "train", data=root, image_size=224, resize=256).images
    windows = np.lib.stride_tricks.sliding_window_view(train, (5, 5), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    windows = windows.reshape(-1, 5, 5, 3)
    assert all((windows == p).all(axis=(1, 2, 3)).any() for p in patches)  # every patch is a crop of train/


def test_quilting_refuses_a_folder_without_train(tmp_path: Path, training) -> None:
    root = write_folder(tmp_path / "f", {"val": 1}, size=(16, 16))
    use_training_data(TrainingData("imagefolder", str(root)))
    with pytest.raises(DataError, match=r"missing split directory .*train"):
        build_transform("quilting(db_size=50)")(jnp.zeros((1, 16, 16, 3)), KEY)


def test_chunked_neighbour_search_equals_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    q, db = jnp.asarray(rng.random((37, 12), np.float32)), rng.random((40, 12), np.float32)
    whole = np.asarray(quilting.nearest_patches(q, db, 3))
    monkeypatch.setattr(quilting, "SEARCH_ELEMENTS", 40 * 8)  # chunks of 8 queries, the last one padded
    assert np.array_equal(np.asarray(quilting.nearest_patches(q, db, 3)), whole)
    exact = ((np.asarray(q)[:, None] - db[None]) ** 2).sum(-1)
    assert np.array_equal(whole[:, 0], exact.argmin(1))


# ----------------------------------------------------------------------------- the base model
def test_a_bare_transform_runs_in_front_of_the_protocols_base() -> None:
    d = build_defense("jpeg(quality=75)")
    assert d.on_base("resnet20") is d and d.members == ("resnet20",)
    mine = d.on_base("resnet50v2-imagenet")
    assert mine.members == ("resnet50v2-imagenet",) and mine.spec == "jpeg(quality=75)"
    for spec in ("ensemble(transforms=('jpeg(quality=75)',), members=('resnet32',))", "shield()",
                 "ensemble(transforms=('jpeg(quality=75)',), members=('resnet20',), vote='majority')"):
        assert build_defense(spec).on_base("resnet50v2-imagenet").members == build_defense(spec).members


def test_the_runner_scores_a_bare_transform_on_the_protocols_base(world, tmp_path: Path) -> None:
    from bench.eval.runner import Runner

    text = (world["protocols"] / "tiny.toml").read_text().replace('name = "tiny"', 'name = "other_base"')
    text = text.replace('base = "resnet20"', 'base = "resnet32"')
    path = tmp_path / "other_base.toml"
    path.write_text(text[: text.index("[[attack]]")] + '[[attack]]\nspec = "fgsm(eps=8)"\nknowledge = ["gray-box"]\n')
    result = Runner(load_protocol(str(path))).run(build_defense("identity()"))
    assert result.defense.members == ("resnet32",) and "resnet20" not in result.provenance.models
    assert result.clean_accuracy.mean == result.base_clean_accuracy  # identity() is the bare base


def test_cli_decodes_and_builds_the_database_for_a_protocol(tmp_path: Path, training) -> None:
    from bench.cli.main import main

    root = write_folder(tmp_path / "f", {"train": 1, "val": 1}, size=(240, 260))
    copy = tmp_path / "mine.toml"
    copy.write_text((ROOT / "bench" / "protocols" / "imagefolder-224.toml").read_text()
                    .replace('name = "imagefolder-224"', 'name = "mine"'))
    assert main(["data", "info", "--protocol", str(copy), "--data", str(root)]) == 0
    assert main(["quilting-db", "--protocol", str(copy), "--data", str(root), "--size", "40"]) == 0


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_the_template_end_to_end_with_random_resnet50s(tmp_path: Path, isolated_cache: Path, training) -> None:
    """The template shrunk (4 images, cheap attacks), random ResNet-50 v2s as base and source,
    five defenses (quilting's database from ``train/``), results and the board in ``tmp_path``."""
    from bench.cli.main import main
    from bench.zoo.user_models import USER_MODELS
    from bench.zoo.store import forget_model

    root = write_folder(tmp_path / "imagenet", {"train": 3, "val": 2})
    text = (ROOT / "bench" / "protocols" / "imagefolder-224.toml").read_text()
    text = text.replace('name = "imagefolder-224"', 'name = "tiny224"')
    text = text.replace('"resnet50v2-imagenet"', '"resnet50v2-random"')
    text = text.replace('"resnet50v2-imagenet-source"', '"resnet50v2-random-source"')
    for key, value in (("n", 4), ("batch_size", 4), ("eot", 2)):
        text = re.sub(rf"^{key} = \d+", f"{key} = {value}", text, flags=re.M)
    text = text[: text.index("[[attack]]")] + (
        '[[attack]]\nspec = "fgsm(eps=8)"\nknowledge = ["gray-box", "transfer", "adaptive"]\n\n'
        '[[attack]]\nspec = "pgd(eps=8, steps=2)"\nknowledge = ["gray-box", "adaptive"]\n')
    protocol = tmp_path / "tiny224.toml"
    protocol.write_text(text)
    defenses = ["identity()", "jpeg(quality=75)", "median(size=3)", "tvd(weight=0.05)", "quilting(db_size=2000)"]
    results = tmp_path / "board" / "results"
    try:
        assert main(["run", "--protocol", str(protocol), "--data", str(root), "--results", str(results),
                     "--model", str(ROOT / "examples" / "resnet50v2_random.py"),
                     *[a for d in defenses for a in ("--defense", d)]]) == 0
    finally:
        for name in ("resnet50v2-random", "resnet50v2-random-source"):
            USER_MODELS.pop(name, None)
            forget_model(name)
    files = (results / "tiny224").glob("*.json")
    stored = {r["defense"]["spec"]: r for r in (json.loads(f.read_text()) for f in files)}
    assert sorted(stored) == sorted(defenses)
    for r in stored.values():
        assert r["defense"]["members"] == ["resnet50v2-random"] and not r["skipped"]
        assert r["data"]["dataset"] == "imagefolder" and r["data"]["split"] == "val" and r["data"]["n"] == 4
        assert {a["knowledge"] for a in r["attacks"]} == {"gray-box", "transfer", "adaptive"}
        assert set(r["provenance"]["models"]) == {"resnet50v2-random", "resnet50v2-random-source"}
    page = (tmp_path / "board" / "tiny224.md").read_text()
    assert all(f"`{d}`" in page for d in defenses)
    assert [p.name.split("-")[1] for p in (isolated_cache / "quilting").glob("*.npz")] == ["224r256"]
