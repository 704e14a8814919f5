"""shieldbench: scores image preprocessing defenses against adversarial attacks, on JAX.

The stable public API:

* ``load_dataset(name, split)`` — decoded, cached dataset splits (``bench.data``);
* ``load_model(name)`` — zoo models with a jitted ``predict(x) -> logits`` and their card;
* ``build_transform(spec)`` — registered preprocessing defenses by spec string, e.g.
  ``"jpeg(quality=75)"``; ``Transform`` and ``register_transform`` to write new ones;
  ``bpda(transform)`` for the transform with its surrogate's gradient.

Images are float32 ``[B, H, W, C]`` in [0, 1] at every boundary.
"""

from __future__ import annotations

from bench.data import DataError, Dataset, load_dataset
from bench.registry import SpecError
from bench.transform import Transform, bpda, build_transform, register_transform
from bench.zoo import ZooError, ZooModel, list_models, load_model

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    """Versions of shieldbench and the packages that determine its numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"shieldbench": __version__}
    for pkg in ("jax", "jaxlib", "flax", "optax", "numpy", "pillow", "foolbox", "eagerpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


__all__ = [
    "DataError", "Dataset", "SpecError", "Transform", "ZooError", "ZooModel", "bpda", "build_transform",
    "list_models", "load_dataset", "load_model", "register_transform", "versions",
]
