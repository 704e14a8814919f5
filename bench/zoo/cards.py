"""Where zoo models live: the weights folder in the package, directories on ``$SHIELDBENCH_ZOO``,
and the card names found there (``bench.zoo.store`` loads them; ``bench.zoo.user_models`` keeps
users' names clear of them)."""

from __future__ import annotations

import os
from pathlib import Path

ZOO_DIR = Path(__file__).resolve().parent / "weights"


class ZooError(Exception):
    """A zoo model is unknown, missing, or its weights do not match its card."""


def zoo_dirs() -> list[Path]:
    """Where models are looked up: ``$SHIELDBENCH_ZOO`` (``os.pathsep``-separated) then the package."""
    extra = [Path(p) for p in os.environ.get("SHIELDBENCH_ZOO", "").split(os.pathsep) if p]
    return [*extra, ZOO_DIR]


def card_names() -> list[str]:
    """Names of the models with a card (``<name>.json``) in the zoo directories."""
    return sorted({p.stem for d in zoo_dirs() if d.is_dir() for p in d.glob("*.json")})
