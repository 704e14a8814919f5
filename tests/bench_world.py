"""A tiny, learnable benchmark world for runner tests: synthetic data, two tiny models, a protocol.

Class ``c`` images are grey plus a faint class colour (about 14/255) and smooth noise, so a
ResNet-8 learns them in a few dozen steps and an 8/255 attack can still flip them; two such models with different seeds play the base (``resnet20``) and the
transfer source (``resnet32``) in a temporary zoo. ``tiny.toml`` is a small protocol.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from bench.core.data import CIFAR10_CLASSES

PROTOCOL = """
name = "tiny"
version = 1
description = "test protocol"
dataset = "cifar10"
split = "test"
n = 40
seed = 0
base = "resnet20"
source = "resnet32"
draws = 2
eot = 2
batch_size = 20
l2_threshold = 0.5
defenses = ["identity()", "jpeg(quality=75)"]

[[attack]]
spec = "fgsm(eps=8)"
knowledge = ["gray-box", "transfer"]

[[attack]]
spec = "pgd(eps=8, steps=5)"
knowledge = ["gray-box", "transfer", "adaptive"]

[[attack]]
spec = "deepfool_l2(steps=10)"
knowledge = ["gray-box"]
n = 20

[[attack]]
spec = "worst_case(attacks=('pgd(eps=8, steps=5)', 'apgd_ce(eps=8, steps=3)', 'square(eps=8, queries=10)'), check='apgd_ce(eps=8, steps=3)')"
knowledge = ["adaptive"]
"""


def class_images(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[10 * n, 32, 32, 3]`` images and their labels."""
    rng = np.random.default_rng(seed)
    t = 2 * np.pi * np.arange(10) / 10
    offsets = 14 * np.stack([np.cos(t), np.sin(t), np.cos(2 * t)], axis=1)  # weak class signal: 8/255 flips it
    labels = np.repeat(np.arange(10), n_per_class)
    coarse = rng.normal(0, 3, (len(labels), 9, 9, 3))
    noise = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)[:, :32, :32]
    imgs = np.clip(128 + offsets[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    return imgs, labels


def write_world(root: Path) -> dict[str, Path]:
    """Writes data, a trained tiny zoo and the protocol under ``root``; returns their paths."""
    import jax

    from bench.core.data import load_dataset
    from bench.zoo.train import TrainConfig, fit
    from bench.zoo.store import save_model

    data = root / "data"
    for s, split in enumerate(("train", "test")):
        imgs, labels = class_images(30 if split == "train" else 6, seed=s)
        for i, (img, c) in enumerate(zip(imgs, labels)):
            d = data / split / CIFAR10_CLASSES[c]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i:04d}.png")
    train = load_dataset("cifar10", "train", data=data)
    zoo = root / "zoo"
    zoo.mkdir()
    for name, seed in (("resnet20", 0), ("resnet32", 1)):
        config = TrainConfig(arch="resnet8", seed=seed, epochs=8, batch_size=30, lr=0.05, warmup_epochs=0.5)
        state, _ = fit(config, train, run_dir=root / f"run-{name}")
        save_model(name, {"params": state["params"], "batch_stats": state["batch_stats"]},
                   {"arch": "resnet8", "input_shape": [32, 32, 3], "test_accuracy": None}, zoo)
    protocols = root / "protocols"
    protocols.mkdir()
    (protocols / "tiny.toml").write_text(PROTOCOL)
    jax.clear_caches()
    return {"data": data, "zoo": zoo, "protocols": protocols}


FGSM_ONLY = '[[attack]]\nspec = "fgsm(eps=8)"\nknowledge = ["gray-box"]\n'
# the tiny protocol's gray-box and transfer attacks (four numbers), without its costly adaptive ones
NON_ADAPTIVE = FGSM_ONLY.replace('"gray-box"', '"gray-box", "transfer"') + \
    '\n[[attack]]\nspec = "pgd(eps=8, steps=5)"\nknowledge = ["gray-box", "transfer"]\n'


def small_protocol(mp, files: dict[str, Path], root: Path, name: str = "tiny-fgsm", attacks: str = FGSM_ONLY) -> str:
    """Adds a protocol with the tiny world's data, models and settings but only ``attacks`` (TOML
    ``[[attack]]`` tables; one gray-box FGSM by default) on 20 images, for tests about a
    submission's path through the harness rather than about the attacks; returns its name."""
    text = PROTOCOL.split("[[attack]]")[0].replace('name = "tiny"', f'name = "{name}"').replace("n = 40", "n = 20")
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.toml").write_text(text + attacks)
    mp.setenv("SHIELDBENCH_PROTOCOLS", f"{root}{os.pathsep}{files['protocols']}")
    return name


def use_world(mp, files: dict[str, Path]) -> None:
    """Points the zoo, protocol and data lookups at the world (``mp``: a pytest MonkeyPatch)."""
    mp.setenv("SHIELDBENCH_ZOO", str(files["zoo"]))
    mp.setenv("SHIELDBENCH_PROTOCOLS", str(files["protocols"]))
    mp.setenv("SHIELDBENCH_DATA", str(files["data"]))
