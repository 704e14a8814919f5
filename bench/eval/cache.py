"""Content-addressed on-disk cache of adversarial examples ("attack once, defend many").

One entry per crafted batch: the float32 adversarial images (lossless), Foolbox's success
mask and the crafting time, in an ``.npz`` written atomically under
``<cache>/adversarial/<digest>.npz``. The digest is the sha256 of a *key*: a JSON-able dict
naming everything the examples depend on (crafting-model weight hashes, attack spec, image
indices, seed, package versions; for adaptive attacks the defense spec and EOT count too).
The key itself is stored in the entry and compared on read: a damaged, truncated or
mismatched entry is reported as a miss (and then recomputed and overwritten), never trusted.
Batch granularity is what lets an interrupted run resume where it stopped.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.io import atomic_write_bytes, cache_root, probe_writable, sha256_bytes, sweep_stale_temps


@dataclass(frozen=True)
class CachedBatch:
    """A crafted batch: ``x_adv`` float32 ``[B, H, W, C]``, ``success`` bool ``[B]``, seconds spent."""

    x_adv: np.ndarray
    success: np.ndarray
    seconds: float


def _canonical(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


class AdversarialCache:
    """The cache directory (default ``<cache_root()>/adversarial``); ``enabled=False`` stores nothing."""

    def __init__(self, root: Path | None = None, enabled: bool = True):
        self.root = Path(root) if root is not None else cache_root() / "adversarial"
        self.enabled = enabled

    def path(self, key: dict[str, Any]) -> Path:
        return self.root / f"{sha256_bytes(_canonical(key).encode())[:32]}.npz"

    def get(self, key: dict[str, Any], batch: int) -> CachedBatch | None:
        """The entry for ``key`` if present, intact, of ``batch`` images and really for ``key``."""
        if not self.enabled:
            return None
        path = self.path(key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) != _canonical(key):
                    return None
                entry = CachedBatch(np.asarray(z["x_adv"]), np.asarray(z["success"]), float(z["seconds"]))
        except Exception:  # damaged or truncated: recompute
            return None
        if (entry.x_adv.dtype != np.float32 or entry.x_adv.shape[0] != batch or entry.success.shape != (batch,)
                or not np.all(np.isfinite(entry.x_adv))):
            return None
        return entry

    def put(self, key: dict[str, Any], entry: CachedBatch) -> None:
        """Stores ``entry`` under ``key`` atomically.

        A write that fails (a full disk, a read-only directory) disables the cache with one
        warning instead of ending the run: the examples in hand are still scored.
        """
        if not self.enabled:
            return
        buf = io.BytesIO()
        np.savez(buf, x_adv=np.asarray(entry.x_adv, np.float32), success=np.asarray(entry.success, bool),
                 seconds=np.float64(entry.seconds), key=np.array(_canonical(key)))
        try:
            atomic_write_bytes(self.path(key), buf.getvalue())
        except OSError as e:
            self.disable(f"cannot write the adversarial cache {self.root} ({e})")

    def disable(self, why: str) -> None:
        """Turns the cache off for this run with one warning naming ``why``."""
        if self.enabled:
            warnings.warn(f"{why}; continuing without the cache (set $SHIELDBENCH_CACHE to a writable directory)",
                          stacklevel=3)
        self.enabled = False

    def check_writable(self) -> None:
        """Probes the directory before any crafting; an unwritable cache is disabled (one warning)."""
        if not self.enabled:
            return
        try:
            probe_writable(self.root)
        except OSError as e:
            self.disable(f"cannot write the adversarial cache {self.root} ({e})")
        else:
            sweep_stale_temps(self.root)
