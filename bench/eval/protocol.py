"""Protocols: named, versioned evaluation recipes stored as TOML files in the package.

A protocol fixes everything a score depends on besides the defense (docs/design.md#protocols): the
dataset split and the image index set (``n`` images drawn once with ``seed`` by
``bench.core.data.subset_indices``; the CIFAR-10 test split is class-ordered, so never "the first
n"), the base and transfer-source models, the attacks and the knowledge levels each runs at,
the number R of scoring draws for randomized defenses, the EOT sample count K (an attack may
set its own, e.g. ``2 K`` for a sanity check), the L2 threshold at which minimum-norm
attacks are scored, and for image folders of any image size the evaluation crop (optional
``image_size`` and ``resize``: ``bench.core.data.fit_image``; the data location itself is never
in the file: ``--data`` or ``$SHIELDBENCH_DATA``). An attack may use only a fixed random
subset of ``n`` images of the index set (drawn with ``seed + 1``; subsets of different sizes
are nested; stated in results and on the leaderboard) when it is too slow for all of them.
Unknown keys are errors (a typo must not silently change a protocol).

Files: ``bench/protocols/<name>.toml``; ``$SHIELDBENCH_PROTOCOLS`` (``os.pathsep``-separated
directories) is searched first.

Identity. A protocol has two fingerprints. ``sha256`` is the file's bytes, printed on the pages
as a pointer to the exact file. ``identity`` is a hash of the fields that change scores, and only
those (:data:`IDENTITY_FIELDS` and every attack's canonical spec, knowledge levels, ``n`` and
``eot``, in order): a stored result or job partial belongs to the protocol when its identity
matches, so editing a comment, the description, the version label or the list of defenses
leaves every stored result valid, and changing an attack, a budget, the images, a model, the
draws, EOT or a seed does not. A result written before identities existed carries only the
file's sha256; it matches when that is the current file's (:func:`same_protocol`), and
``scripts/migrate_protocol_identity.py`` gives old results their identity from the protocol
file's git history.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.data import subset_indices
from bench.core.io import sha256_bytes
from bench.eval.knowledge import LEVELS

KNOWLEDGE = LEVELS  # bench.eval.knowledge.Knowledge
_TOP_KEYS = {"name", "version", "description", "dataset", "split", "n", "seed", "base", "source", "draws", "eot",
             "batch_size", "l2_threshold", "defenses", "attack", "image_size", "resize"}
_ATTACK_KEYS = {"spec", "knowledge", "n", "eot"}
PROTOCOL_DIR = Path(__file__).resolve().parents[1] / "protocols"
# what a score depends on, besides the attacks: the identity hashes these (and the attacks)
IDENTITY_FIELDS = ("dataset", "split", "n", "seed", "base", "source", "draws", "eot", "batch_size", "l2_threshold",
                   "image_size", "resize")


class ProtocolError(ValueError):
    """An unknown protocol or a malformed protocol file."""


@dataclasses.dataclass(frozen=True)
class AttackPlan:
    """One attack of a protocol.

    Attributes:
        spec: attack spec, e.g. ``"pgd(eps=8, steps=20)"``.
        knowledge: the knowledge levels it runs at.
        n: use only a fixed random subset of ``n`` images of the index set (``None``: all).
        eot: EOT samples per step for randomized defenses at the adaptive level (``None``: the
            protocol's K); a sanity attack sets ``2 K`` to test that K was enough.
    """

    spec: str
    knowledge: tuple[str, ...]
    n: int | None = None
    eot: int | None = None


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A parsed protocol file (field meanings in the module docstring)."""

    name: str
    version: int
    description: str
    dataset: str
    split: str
    n: int
    seed: int
    base: str
    source: str
    draws: int
    eot: int
    batch_size: int
    l2_threshold: float
    attacks: tuple[AttackPlan, ...]
    defenses: tuple[str, ...]
    sha256: str
    path: str
    image_size: int | None = None
    resize: int | None = None

    @functools.cached_property
    def identity(self) -> str:
        """sha256 over the fields that change scores (the module docstring): not the file's comments,
        description, version label or defense list. Attack specs count in canonical form, so
        ``pgd(eps=8,steps=5)`` and ``pgd(eps=8, steps=5)`` are one attack."""
        from bench.core.registry import format_spec, parse_spec

        def canonical(spec: str) -> str:
            name, args, kwargs = parse_spec(spec)
            return format_spec(name, {**{f"#{i}": a for i, a in enumerate(args)}, **kwargs})

        body: dict[str, Any] = {f: getattr(self, f) for f in IDENTITY_FIELDS}
        body["attacks"] = [{"spec": canonical(a.spec), "knowledge": list(a.knowledge), "n": a.n, "eot": a.eot}
                           for a in self.attacks]
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def header(self) -> dict[str, Any]:
        """How a result or job partial names the protocol it was scored under."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "identity": self.identity}

    def attacks_at(self, knowledge: str) -> list[AttackPlan]:
        return [a for a in self.attacks if knowledge in a.knowledge]

    def positions(self, plan: AttackPlan) -> np.ndarray:
        """Positions (into the index set) an attack uses: all, or a fixed random subset of ``plan.n``."""
        if plan.n is None or plan.n >= self.n:
            return np.arange(self.n)
        return subset_indices(self.n, plan.n, self.seed + 1)


def fingerprint(header: Mapping[str, Any]) -> tuple[str, str]:
    """What a stored ``protocol`` header is matched by: ``("identity", hash)``, or for a header from
    before identities ``("sha256", the file's hash)``."""
    if "identity" in header:
        return "identity", header["identity"]
    return "sha256", header.get("sha256", "")


def same_protocol(stored: Mapping[str, Any], protocol: Protocol) -> bool:
    """Whether a stored result's or partial's ``protocol`` header names ``protocol``: the same name
    and identity, or (a header from before identities) the same file bytes."""
    kind, value = fingerprint(stored)
    return stored.get("name") == protocol.name and value == protocol.header()[kind]


def protocol_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("SHIELDBENCH_PROTOCOLS", "").split(os.pathsep) if p]
    return [*extra, PROTOCOL_DIR]


def list_protocols() -> list[str]:
    """Names of all protocol files found."""
    return sorted({p.stem for d in protocol_dirs() if d.is_dir() for p in d.glob("*.toml")})


def _require(table: dict, key: str, kind: type | tuple[type, ...], where: str):
    if key not in table:
        raise ProtocolError(f"{where}: missing key {key!r}")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ProtocolError(f"{where}: {key!r} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def parse_protocol(path: Path) -> Protocol:
    """Reads and validates one protocol file.

    Raises:
        ProtocolError: unreadable TOML, missing or mistyped keys, unknown knowledge levels or
            attack specs (all naming the file).
    """
    from attacks.specs import build_attack
    from bench.core.registry import SpecError

    where = str(path)
    raw = path.read_bytes()
    try:
        t = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ProtocolError(f"{where}: not valid TOML ({e})") from None
    unknown = sorted(set(t) - _TOP_KEYS)
    if unknown:
        raise ProtocolError(f"{where}: unknown key(s) {unknown} (known: {sorted(_TOP_KEYS)})")
    n = _require(t, "n", int, where)
    plans = []
    for i, a in enumerate(t.get("attack", [])):
        w = f"{where}: attack[{i}]"
        if not isinstance(a, dict) or set(a) - _ATTACK_KEYS:
            raise ProtocolError(f"{w}: unknown key(s) {sorted(set(a) - _ATTACK_KEYS)} "
                                f"(known: {', '.join(sorted(_ATTACK_KEYS))})")
        spec = _require(a, "spec", str, w)
        try:
            build_attack(spec)
        except SpecError as e:
            raise ProtocolError(f"{w}: {e}") from None
        levels = tuple(_require(a, "knowledge", list, w))
        bad = [k for k in levels if k not in KNOWLEDGE]
        if bad or not levels:
            raise ProtocolError(f"{w}: knowledge must be a non-empty subset of {KNOWLEDGE}, got {list(levels)}")
        sub = a.get("n")
        if sub is not None and (not isinstance(sub, int) or not 1 <= sub <= n):
            raise ProtocolError(f"{w}: n must be an integer in 1..{n}, got {sub!r}")
        k = a.get("eot")
        if k is not None and (not isinstance(k, int) or k < 1 or "adaptive" not in levels):
            raise ProtocolError(f"{w}: eot must be an integer >= 1 on an adaptive attack, got {k!r}")
        plans.append(AttackPlan(spec, levels, sub, k))
    if not plans:
        raise ProtocolError(f"{where}: no [[attack]] tables")
    p = Protocol(
        name=_require(t, "name", str, where),
        version=_require(t, "version", int, where),
        description=str(t.get("description", "")),
        dataset=_require(t, "dataset", str, where),
        split=_require(t, "split", str, where),
        n=n,
        seed=_require(t, "seed", int, where),
        base=_require(t, "base", str, where),
        source=_require(t, "source", str, where),
        draws=_require(t, "draws", int, where),
        eot=_require(t, "eot", int, where),
        batch_size=_require(t, "batch_size", int, where),
        l2_threshold=float(_require(t, "l2_threshold", (int, float), where)),
        attacks=tuple(plans),
        defenses=tuple(_require(t, "defenses", list, where)),
        sha256=sha256_bytes(raw),
        path=where,
        image_size=t.get("image_size"),
        resize=t.get("resize"),
    )
    if p.name != path.stem:
        raise ProtocolError(f"{where}: name {p.name!r} does not match the file name")
    for key in ("n", "draws", "eot", "batch_size"):
        if getattr(p, key) < 1:
            raise ProtocolError(f"{where}: {key} must be >= 1, got {getattr(p, key)}")
    if not p.l2_threshold > 0 or not math.isfinite(p.l2_threshold):  # NaN fails both comparisons
        raise ProtocolError(f"{where}: l2_threshold must be a finite number > 0, got {p.l2_threshold}")
    if p.seed < 0 or p.seed >= 2 ** 63:
        raise ProtocolError(f"{where}: seed must be an integer in 0..2**63-1, got {p.seed}")
    from bench.core.data import check_fit

    try:
        check_fit(p.dataset, p.image_size, p.resize)
    except ValueError as e:
        raise ProtocolError(f"{where}: {e}") from None
    from bench.core.defense import build_defense

    for i, spec in enumerate(p.defenses):
        if not isinstance(spec, str):
            raise ProtocolError(f"{where}: defenses[{i}] must be a defense spec string such as "
                                f"'jpeg(quality=75)', got {spec!r}")
        try:
            build_defense(spec)
        except (SpecError, TypeError) as e:
            raise ProtocolError(f"{where}: defenses[{i}]: {e}") from None
    return p


def load_protocol(name: str) -> Protocol:
    """Loads a protocol by name (or from a path ending in ``.toml``).

    Raises:
        ProtocolError: unknown name (with close matches) or a malformed file.
    """
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise ProtocolError(f"{path}: no such protocol file")
        return parse_protocol(path)
    for d in protocol_dirs():
        path = d / f"{name}.toml"
        if path.is_file():
            return parse_protocol(path)
    from bench.core.registry import unknown_name

    raise ProtocolError(unknown_name("protocol", name, list_protocols()))
