"""The versions a result records: shieldbench's own and those of the packages its numbers depend on."""

from __future__ import annotations

__version__ = "0.1.0"

PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "pillow", "foolbox", "eagerpy")


def versions() -> dict[str, str]:
    """Versions of shieldbench and the packages that determine its numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"shieldbench": __version__}
    for pkg in PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out
