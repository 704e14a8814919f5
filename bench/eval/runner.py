"""The benchmark runner: one defense under one protocol -> one ``Result`` (docs/design.md#threat-models, #metrics).

Knowledge levels (what the attacker knows):

* **gray-box**: examples crafted on the bare base model, scored on the defended classifier;
* **transfer**: crafted on the independently trained source model, scored on the defense;
* **adaptive**: crafted on the whole defended pipeline: every transform replaced by its BPDA
  surrogate, ensembles attacked through their mean logits, and for randomized defenses the
  logits averaged over K EOT keys drawn afresh at every gradient evaluation; then scored
  with fresh randomness (keys the attacker never saw).

"Attack once, defend many": gray-box and transfer examples do not depend on the defense and
are cached per batch (``bench.eval.cache``) under a key of crafting-model hash, attack spec and
parameters, data source checksum, image indices, seed, package versions and a hash of the
attack's code (``Runner.attack_code``); adaptive examples are keyed by the defense too: its views (transform specs and
member hashes), EOT count and a hash of the defense code (the ``defenses`` package, the
transform and defense modules, and any transform class defined elsewhere, e.g. a
submission file). An interrupted run therefore resumes at the batch it stopped at, and a
code change never reuses stale examples. Adaptive attacks craft in batches of
``batch_size // (K * views)`` images so that EOT does not multiply memory.

Results are made from per-image records (``bench.eval.metrics`` defines every metric once) by
``bench.eval.merge``, the same code that merges the partial results of a protocol split into jobs
(``bench.eval.jobs``: defense x attack x shard). Shards are contiguous blocks of each attack's
batches; every batch is crafted and scored with keys derived from its number in the unsplit
run (an adaptive batch that EOT splits into sub-batches numbers them within it), so a shard
reproduces exactly the records the unsplit run has for its images.
"""

from __future__ import annotations

import datetime
import hashlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from attacks.specs import Attack, build_attack
from attacks.target import AttackTarget
from attacks.worst_case import WorstCase
from bench.eval.adaptive import run_worst_case
from bench.eval.cache import AdversarialCache, CachedBatch
from bench.core.data import TrainingData, load_dataset, subset_indices, use_training_data
from bench.core.defense import DefendedBatchError, DefendedClassifier, Defense
from bench.core.io import sha256_bytes
from bench.eval.jobs import Partial, PartialHeader, Selection, Shard
from bench.eval.metrics import COST_BATCH, AttackInfo, AttackRecords, CleanRecords
from bench.eval.protocol import AttackPlan, Protocol
from bench.eval.results import KNOWLEDGE_LEVELS
from bench.eval.knowledge import Knowledge
from bench.eval.schema import DataRef, DefenseRef, ProtocolRef, Result, Skip, read_json
from bench.zoo.store import ZooModel, list_models, load_model


@dataclass(frozen=True)
class RunEvent:
    """Progress of one stage (``total`` batches); the CLI turns these into progress bars."""

    stage: str
    done: int
    total: int


def _sha(a: np.ndarray) -> str:
    return sha256_bytes(np.ascontiguousarray(a).tobytes())


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


_ROOT = Path(__file__).resolve().parents[2]


def code_sha256(paths: list[Path]) -> str:
    """sha256 over the contents of ``paths`` (files, or directories' ``*.py`` files), sorted."""
    files = sorted({f for p in paths for f in ([p] if p.is_file() else p.rglob("*.py"))})
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _place(x: np.ndarray) -> jax.Array:
    """Puts a batch on all local devices, sharded along the batch axis when it divides evenly."""
    n = jax.local_device_count()
    if n > 1 and x.shape[0] % n == 0:
        mesh = jax.sharding.Mesh(np.array(jax.local_devices()), ("batch",))
        return jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch")))
    return jnp.asarray(x)


@dataclass(frozen=True)
class Crafted:
    """One attack's examples on a shard, before scoring.

    Attributes:
        attack: the attack.
        positions: int ``[n]`` positions in the protocol's index set.
        x_adv: float32 ``[n, H, W, C]``.
        success: bool ``[n]`` on the crafting model or pipeline.
        seconds: crafting time.
        source: the crafting model's name, or the defense spec (adaptive).
        eot: EOT samples per gradient.
        first: the shard's first batch number.
        outcome, stages: a worst-case ensemble's per-image outcome and stages (see ``bench.eval.metrics``).
    """

    attack: Attack
    positions: np.ndarray
    x_adv: np.ndarray
    success: np.ndarray
    seconds: float
    source: str
    eot: int
    first: int
    outcome: np.ndarray | None = None
    stages: tuple = ()


class Runner:
    """Scores defenses under one protocol.

    Args:
        protocol: the protocol.
        data: dataset location (as ``bench.load_dataset``'s ``data``).
        cache: adversarial-example cache (default: enabled, under the cache root).
        on_event: progress callback.
        command: the reproducing command recorded in results.
    """

    def __init__(self, protocol: Protocol, *, data: str | None = None, cache: AdversarialCache | None = None,
                 on_event: Callable[[RunEvent], None] | None = None, command: str = ""):
        self.protocol = protocol
        self.cache = cache if cache is not None else AdversarialCache()
        self.emit = on_event or (lambda e: None)
        self.command = command
        ds = load_dataset(protocol.dataset, protocol.split, data=data, image_size=protocol.image_size,
                          resize=protocol.resize)
        # data-built transforms (quilting's patch database) learn from this dataset's training split
        use_training_data(TrainingData(protocol.dataset, None if data is None else str(data), protocol.image_size,
                                       protocol.resize))
        if protocol.n > len(ds):
            raise ValueError(f"protocol {protocol.name} wants {protocol.n} images; {protocol.split} has {len(ds)}")
        self.indices = subset_indices(len(ds), protocol.n, protocol.seed)
        self.x = ds.images[self.indices].astype(np.float32) / 255.0
        self.y = ds.labels[self.indices].astype(np.int32)
        self.data_info = {"dataset": protocol.dataset, "split": protocol.split, "n": int(protocol.n),
                          "indices_sha256": _sha(self.indices.astype(np.int64)),
                          "source_sha256": ds.source_sha256}
        self._data_key = [protocol.dataset, protocol.split, ds.source_sha256]
        if protocol.image_size is not None:  # the crop decides the pixels (absent for CIFAR: its keys unchanged)
            self._data_key.append(f"crop {protocol.image_size} of {protocol.resize or protocol.image_size}")
        self._attack_code: dict[type, str] = {}
        from bench.core.versions import versions

        self.versions = versions()
        self._defense_code: dict[str, str] = {}
        self.root = jax.random.key(protocol.seed)
        self._models: dict[str, ZooModel] = {}
        self._jitted: dict[str, Callable] = {}
        self._base_clean: np.ndarray | None = None

    # ------------------------------------------------------------------ helpers
    def model(self, name: str) -> ZooModel:
        if name not in self._models:
            self._models[name] = load_model(name)
        return self._models[name]

    def _logits(self, name: str) -> Callable[[jax.Array], jax.Array]:
        if name not in self._jitted:
            self._jitted[name] = jax.jit(self.model(name).logits_fn())
        return self._jitted[name]

    def _units(self, pos: np.ndarray, shard: Shard) -> tuple[int, list[np.ndarray], np.ndarray]:
        """The shard's block of ``pos``'s protocol-size batches.

        Returns:
            ``(first batch number, batches, their positions concatenated)``.
        """
        b = self.protocol.batch_size
        units = shard.units(-(-len(pos) // b))
        batches = [pos[j * b : (j + 1) * b] for j in units]
        return units.start, batches, np.concatenate([np.zeros(0, np.int64), *batches])

    def base_clean(self) -> np.ndarray:
        """Bool ``[N]``: the bare base model classifies the clean images correctly (computed once)."""
        if self._base_clean is None:
            self._base_clean = self.base_correct(self.protocol.base, self.x, self.y)
        return self._base_clean

    def base_correct(self, name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bool ``[N]``: the bare model ``name`` classifies ``x`` correctly (batched)."""
        fn = self._logits(name)
        return self.correct(lambda xb, keys: jnp.argmax(fn(xb), -1)[None], x, y, 1, f"bare|{name}")[0]

    def craft(self, stage: str, attack: Attack, batches: list[tuple[int, np.ndarray]],
              target_for_batch: Callable[[int], AttackTarget], key_parts: dict[str, Any],
              pad_to: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray, float]:
        """Crafts (or reads from the cache) adversarial examples, one attack call per batch.

        Args:
            batches: ``(batch number, positions)`` pairs; the number keys the randomness and
                the cache entry, so a batch gives the same examples whichever job crafts it.
            target_for_batch: batch number -> the target the attack crafts against.
            key_parts: what the examples depend on besides the batch (cache key).
            pad_to: batch sizes to pad to: a batch is padded (repeating its first image) to the
                smallest of these that holds it, so that a compiled attack sees few batch
                shapes; the padding is dropped. The size padded to is part of the cache key.

        Returns:
            ``(x_adv [N, H, W, C], success [N], seconds)``; seconds include cached batches'
            recorded crafting times.
        """
        akey = jax.random.fold_in(self.root, _stable_int(f"attack|{stage}|{attack!r}"))
        xs = [np.zeros((0, *self.x.shape[1:]), np.float32)]
        ss, seconds = [np.zeros(0, bool)], 0.0
        self.emit(RunEvent(stage, 0, len(batches)))
        for i, (b, sel) in enumerate(batches):
            key = {**key_parts, "attack": repr(attack), "attack_params": attack.params(), "seed": self.protocol.seed,
                   "versions": self.versions, "attack_code": self.attack_code(attack),
                   "data": self._data_key,
                   "indices_sha256": _sha(self.indices[sel].astype(np.int64)), "batch": b}
            size = min((p for p in pad_to if p >= len(sel)), default=len(sel))
            if pad_to:
                key["padded_to"] = size
            entry = self.cache.get(key, len(sel))
            if entry is None:
                t0 = time.perf_counter()
                run = np.concatenate([sel, np.repeat(sel[:1], size - len(sel))])
                out = attack.run(target_for_batch(b), _place(self.x[run]), jnp.asarray(self.y[run]),
                                 jax.random.fold_in(akey, b))
                x_adv = np.asarray(out.x_adv, np.float32)[: len(sel)]
                entry = CachedBatch(x_adv, np.asarray(out.success, bool)[: len(sel)], time.perf_counter() - t0)
                self.cache.put(key, entry)
            xs.append(entry.x_adv)
            ss.append(entry.success)
            seconds += entry.seconds
            self.emit(RunEvent(stage, i + 1, len(batches)))
        return np.concatenate(xs), np.concatenate(ss), seconds

    def correct(self, predict_draws: Callable[[jax.Array, jax.Array], jax.Array], x: np.ndarray, y: np.ndarray,
                draws: int, stream: str, first_batch: int = 0) -> np.ndarray:
        """Bool ``[R, N]``: defended predictions == labels, for R draws of the defense's randomness.

        ``x`` is scored in protocol-size batches numbered from ``first_batch`` (a shard's
        first batch number): batch ``j`` of draw ``r`` always gets the key
        ``fold_in(fold_in(stream key, r), j)``. ``predict_draws(xb, keys [R]) -> [R, B]``
        takes a batch's R keys at once (``DefendedClassifier.predict_draws``), so work that
        does not depend on the key (quilting's neighbour search) is done once per batch.
        """
        skey = jax.random.fold_in(self.root, _stable_int(f"score|{stream}"))
        draw_keys = [jax.random.fold_in(skey, r) for r in range(draws)]
        b = self.protocol.batch_size
        out = np.zeros((draws, len(x)), bool)
        for i in range(0, len(x), b):
            xb = x[i : i + b]
            pad = b - len(xb)
            if pad:
                xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
            keys = jnp.stack([jax.random.fold_in(kr, first_batch + i // b) for kr in draw_keys])
            try:
                pred = np.asarray(predict_draws(_place(xb), keys))[:, : b - pad]
            except DefendedBatchError as e:
                raise DefendedBatchError(f"{e} (scoring {stream}, batch {first_batch + i // b})") from None
            out[:, i : i + b] = pred == y[None, i : i + b]
        return out

    def defense_cost_ms(self, clf: DefendedClassifier, batch: int = COST_BATCH, seconds: float = 1.0) -> float:
        """Warm jitted preprocessing time of the defense, ms per image at ``batch``."""
        from bench.core.timing import rate

        x = jnp.asarray(np.resize(self.x, (batch, *self.x.shape[1:])))
        return 1000.0 / rate(lambda: clf.preprocess(x, jax.random.key(0)), batch, seconds)

    # ------------------------------------------------------------------ the run
    def run(self, defense: Defense) -> Result:
        """Scores ``defense`` under the protocol; returns its result (``bench.eval.schema``).

        Raises:
            ZooError: a member, the base model or the transfer source cannot be loaded. (A transfer
                source that is not in the zoo at all only skips the transfer level, recorded under
                ``"skipped"``.)
        """
        from bench.eval.merge import result_from_partials

        return result_from_partials(self.protocol, [self.records(defense)])

    def records(self, defense: Defense, shard: Shard = Shard(), selection: Selection = Selection()) -> Partial:
        """Per-image records of ``defense`` on one shard, for the selected attacks (one job).

        Raises:
            ZooError: as :meth:`run`.
            ValueError: the selection names an attack the protocol does not have.
        """
        p = self.protocol
        selection.check(p)
        t_start = time.perf_counter()
        defense = defense.on_base(p.base)  # a bare transform is scored in front of the protocol's base model
        clf = DefendedClassifier(defense, {m: self.model(m).logits_fn() for m in defense.members})
        draws = p.draws if defense.randomized else 1
        first, _, pos = self._units(np.arange(p.n), shard)
        clean = CleanRecords(pos, self.correct(clf.predict_draws, self.x[pos], self.y[pos], draws, "clean", first),
                             self.base_clean()[pos])
        records, skipped = [], []
        models = {m: self.model(m).card["weights_sha256"] for m in {p.base, *defense.members}}
        for level in KNOWLEDGE_LEVELS:
            plans = [a for a in p.attacks_at(level) if selection.wants(level, a.spec)]
            if not plans:
                continue
            if level == "transfer":
                if p.source not in list_models():
                    # Stable text: no "did you mean" list that changes as the zoo grows. A source model
                    # that is in the zoo but damaged raises below instead of being skipped.
                    skipped.append(Skip(Knowledge(level), f"source model {p.source!r} is not in the zoo"))
                    continue
                models[p.source] = self.model(p.source).card["weights_sha256"]
            for plan in plans:
                records.append(self._attack_records(level, plan, defense, clf, draws, shard))
        header = PartialHeader(read_json(ProtocolRef, p.header(), p.name),
                               DefenseRef(defense.spec, defense.randomized, tuple(defense.members), defense.vote),
                               DataRef(**self.data_info), p.seed, draws, self.versions)
        provenance = {"models": dict(sorted(models.items())), "wall_time_s": time.perf_counter() - t_start,
                      # what the numbers depend on besides the protocol: `check` reports a change plainly
                      "code": {"defense": self.defense_code(defense), "attacks": code_sha256([_ROOT / "attacks"])},
                      "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "command": self.command}
        return Partial(header, shard, selection, clean, records, tuple(skipped), self.defense_cost_ms(clf), provenance)

    def attack_code(self, attack: Attack) -> str:
        """Hash of the code an attack runs: the attack base and target modules, the module defining
        its class, and the Foolbox adapter for attacks that go through it (a change to APGD does not
        invalidate cached PGD examples)."""
        cls = type(attack)
        if cls not in self._attack_code:
            files = [_ROOT / "attacks" / "specs.py", _ROOT / "attacks" / "target.py", Path(inspect.getsourcefile(cls))]
            if cls.run is Attack.run:
                files.append(_ROOT / "attacks" / "foolbox_adapter.py")
            self._attack_code[cls] = code_sha256(files)
        return self._attack_code[cls]

    def defense_code(self, defense: Defense) -> str:
        """Hash of the code a defense runs (hashed once per defense and runner)."""
        if defense.spec not in self._defense_code:
            files = [_ROOT / "defenses", _ROOT / "bench" / "core" / "defense.py",
                     _ROOT / "bench" / "core" / "transform.py"]
            # a sandboxed transform's code is its submission file (bench.submissions.sandbox), not the stand-in's module
            files += [Path(src) for t in defense.transforms
                      if (src := getattr(t, "source_file", None) or inspect.getsourcefile(type(t)))]
            self._defense_code[defense.spec] = code_sha256(files)
        return self._defense_code[defense.spec]

    def adaptive_parts(self, defense: Defense, eot: int) -> dict[str, Any]:
        """What a defense's adaptive examples depend on besides the attack and images (cache key)."""
        defense = defense.on_base(self.protocol.base)
        members = {m: self.model(m).card["weights_sha256"] for m in defense.members}
        views = [[repr(t), m, members[m]] for t, m in defense.views()]
        return {"knowledge": "adaptive", "defense": defense.spec, "views": views, "vote": defense.vote, "eot": eot,
                "defense_code": self.defense_code(defense)}

    def adaptive_batches(self, units: list[np.ndarray], first: int, eot: int, views: int
                         ) -> list[tuple[int, np.ndarray]]:
        """``(batch number, positions)`` of an adaptive attack on ``units`` (numbered from ``first``).

        EOT multiplies memory: each protocol batch is crafted in sub-batches of
        ``batch_size // (K * views)`` images, numbered within their batch.
        """
        sub = max(1, self.protocol.batch_size // (eot * views))
        per_unit = -(-self.protocol.batch_size // sub)
        return [((first + j) * per_unit + i // sub, u[i : i + sub]) for j, u in enumerate(units)
                for i in range(0, len(u), sub)]

    def crafted(self, level: str, plan: AttackPlan, defense: Defense, clf: DefendedClassifier, draws: int,
                shard: Shard = Shard()) -> Crafted:
        """The adversarial examples of one attack at one knowledge level on a shard (cached)."""
        p = self.protocol
        defense = defense.on_base(p.base)
        attack = build_attack(plan.spec)
        first, units, pos = self._units(p.positions(plan), shard)
        eot = (plan.eot or p.eot) if (level == "adaptive" and defense.randomized) else 1
        if level == "adaptive" and isinstance(attack, WorstCase):
            found = run_worst_case(self, attack, defense, clf, draws, eot, first, units,
                                   self.adaptive_parts(defense, eot))
            return Crafted(attack, pos, found.x_adv, found.outcome >= 0, found.seconds, defense.spec, eot, first,
                           found.outcome, found.stages)
        if level == "adaptive":
            parts = self.adaptive_parts(defense, eot)
            batches = self.adaptive_batches(units, first, eot, len(defense.views()))
            source = defense.spec
            target = clf.target("identity", eot)
        else:
            source = p.base if level == "gray-box" else p.source
            parts = {"knowledge": level, "model": source, "model_sha256": self.model(source).card["weights_sha256"]}
            target = AttackTarget.of_model(self._logits(source))
            batches = [(first + j, u) for j, u in enumerate(units)]
        x_adv, success, seconds = self.craft(f"{level} {attack!r}", attack, batches, lambda b: target, parts)
        return Crafted(attack, pos, x_adv, success, seconds, source, eot, first)

    def _attack_records(self, level: str, plan: AttackPlan, defense: Defense, clf: DefendedClassifier, draws: int,
                        shard: Shard) -> AttackRecords:
        p = self.protocol
        c = self.crafted(level, plan, defense, clf, draws, shard)
        attack, pos, x_adv, success = c.attack, c.positions, c.x_adv, c.success
        x, y = self.x[pos], self.y[pos]
        dim = int(np.prod(x.shape[1:]))
        delta = (x_adv - x).reshape(len(pos), dim).astype(np.float64)
        l2 = np.linalg.norm(delta, axis=1)
        thr = None
        if attack.minimum_norm:
            thr = p.l2_threshold
            counted = success & (l2 <= thr)
            x_adv = np.where(counted[:, None, None, None], x_adv, x)
        correct = self.correct(clf.predict_draws, x_adv, y, draws, f"{level}|{attack!r}", c.first)
        fooled = None
        if level != "adaptive":
            fooled = self.base_clean()[pos] & ~self.base_correct(p.base, x_adv, y)
        info = AttackInfo(level, repr(attack), attack.spec_name, attack.norm,
                          None if attack.minimum_norm else float(attack.eps), c.source, c.eot, thr)
        return AttackRecords(info, dim, pos, success, l2, np.abs(delta).max(axis=1, initial=0.0), correct, fooled,
                             c.seconds, c.outcome, c.stages)
