"""The benchmark runner: one defense under one protocol -> one results dict (DESIGN.md §3, §5).

Knowledge levels (what the attacker knows):

* **gray-box**: examples crafted on the bare base model, scored on the defended classifier;
* **transfer**: crafted on the independently trained source model, scored on the defense;
* **adaptive**: crafted on the whole defended pipeline: every transform replaced by its BPDA
  surrogate, ensembles attacked through their mean logits, and for randomized defenses the
  logits averaged over K EOT keys drawn afresh at every gradient evaluation; then scored
  with fresh randomness (keys the attacker never saw).

"Attack once, defend many": gray-box and transfer examples do not depend on the defense and
are cached per batch (``bench.cache``) under a key of crafting-model hash, attack spec and
parameters, data source checksum, image indices, seed, package versions and a hash of the
attack code; adaptive examples are keyed by the defense too: its views (transform specs and
member hashes), EOT count and a hash of the defense code (the ``defenses`` package, the
transform and defense modules, and any transform class defined elsewhere, e.g. a
submission file). An interrupted run therefore resumes at the batch it stopped at, and a
code change never reuses stale examples. Adaptive attacks craft in batches of
``batch_size // (K * views)`` images so that EOT does not multiply memory.

Metrics (each defined here once):

* clean accuracy: defended classifier on the clean images, mean and std over R draws
  (R = the protocol's ``draws`` for randomized defenses, else 1);
* robust accuracy: defended classifier on the attacked images. A fixed-budget Linf attack's
  output is used whether or not it fooled the crafting model (it is a valid in-budget
  attack on the defense either way); minimum-norm attacks (DeepFool, C&W) count an example
  as attacked only if it succeeded on the crafting model with L2 <= the protocol's
  ``l2_threshold`` (otherwise the clean image is scored);
* attack success: Foolbox's success rate on the crafting model (or defended pipeline);
* eliminated: among images the bare base model classifies correctly when clean and wrongly
  when attacked, the fraction the defended classifier gets right (gray-box and transfer);
* perturbation: medians of Linf (in /255), L2 and RMS = L2/sqrt(D) over the successful
  examples the attack changed (an image already misclassified needs no perturbation);
* cost: the defense's own preprocessing time per image (batch 128, jitted, warm) and the
  attack's crafting time per image.
"""

from __future__ import annotations

import datetime
import hashlib
import inspect
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from attacks.specs import Attack, build_attack
from bench.cache import AdversarialCache, CachedBatch
from bench.data import load_dataset, subset_indices
from bench.defense import DefendedClassifier, Defense
from bench.io import sha256_bytes
from bench.protocol import AttackPlan, Protocol
from bench.results import SCHEMA_VERSION
from bench.zoo import ZooError, ZooModel, load_model


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


def _stats(per_draw: np.ndarray) -> dict[str, Any]:
    draws = [float(v) for v in per_draw]
    return {"mean": float(np.mean(draws)), "std": float(np.std(draws)), "draws": draws}


_ROOT = Path(__file__).resolve().parents[1]


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
        ds = load_dataset(protocol.dataset, protocol.split, data=data)
        if protocol.n > len(ds):
            raise ValueError(f"protocol {protocol.name} wants {protocol.n} images; {protocol.split} has {len(ds)}")
        self.indices = subset_indices(len(ds), protocol.n, protocol.seed)
        self.x = ds.images[self.indices].astype(np.float32) / 255.0
        self.y = ds.labels[self.indices].astype(np.int32)
        self.data_info = {"dataset": protocol.dataset, "split": protocol.split, "n": int(protocol.n),
                          "indices_sha256": _sha(self.indices.astype(np.int64)),
                          "source_sha256": ds.source_sha256}
        self.attack_code = code_sha256([_ROOT / "attacks"])
        from bench import versions  # (bench imports this module: not at the top)

        self.versions = versions()
        self._defense_code: dict[str, str] = {}
        self.root = jax.random.key(protocol.seed)
        self._models: dict[str, ZooModel] = {}
        self._jitted: dict[str, Callable] = {}

    # ------------------------------------------------------------------ helpers
    def model(self, name: str) -> ZooModel:
        if name not in self._models:
            self._models[name] = load_model(name)
        return self._models[name]

    def _logits(self, name: str) -> Callable[[jax.Array], jax.Array]:
        if name not in self._jitted:
            self._jitted[name] = jax.jit(self.model(name).logits_fn())
        return self._jitted[name]

    def positions(self, plan: AttackPlan) -> np.ndarray:
        """Positions (into the index set) an attack uses: all, or a fixed random subset of ``plan.n``."""
        if plan.n is None or plan.n >= self.protocol.n:
            return np.arange(self.protocol.n)
        return subset_indices(self.protocol.n, plan.n, self.protocol.seed + 1)

    def _batches(self, pos: np.ndarray, size: int | None = None) -> list[np.ndarray]:
        b = size or self.protocol.batch_size
        return [pos[i : i + b] for i in range(0, len(pos), b)]

    def base_correct(self, name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bool ``[N]``: the bare model ``name`` classifies ``x`` correctly (batched)."""
        fn = self._logits(name)
        return self.correct(lambda xb, key: jnp.argmax(fn(xb), -1), x, y, 1, f"bare|{name}")[0]

    def craft(self, stage: str, attack: Attack, pos: np.ndarray, logits_for_batch: Callable[[int], Callable],
              key_parts: dict[str, Any], batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """Crafts (or reads from the cache) adversarial examples of the images at ``pos``.

        Args:
            logits_for_batch: batch number -> the ``x -> logits`` function Foolbox attacks.
            key_parts: what the examples depend on besides the batch (cache key).
            batch_size: images per Foolbox call (default: the protocol's).

        Returns:
            ``(x_adv [N, H, W, C], success [N], seconds)``; seconds include cached batches'
            recorded crafting times.
        """
        batches = self._batches(pos, batch_size)
        akey = jax.random.fold_in(self.root, _stable_int(f"attack|{stage}|{attack!r}"))
        xs, ss, seconds = [], [], 0.0
        self.emit(RunEvent(stage, 0, len(batches)))
        for b, sel in enumerate(batches):
            key = {**key_parts, "attack": repr(attack), "attack_params": attack.params(), "seed": self.protocol.seed,
                   "versions": self.versions, "attack_code": self.attack_code,
                   "data": [self.data_info["dataset"], self.data_info["split"], self.data_info["source_sha256"]],
                   "indices_sha256": _sha(self.indices[sel].astype(np.int64)), "batch": b}
            entry = self.cache.get(key, len(sel))
            if entry is None:
                t0 = time.perf_counter()
                out = attack.run(logits_for_batch(b), _place(self.x[sel]), jnp.asarray(self.y[sel]),
                                 jax.random.fold_in(akey, b))
                x_adv = np.asarray(out.x_adv, np.float32)
                entry = CachedBatch(x_adv, np.asarray(out.success, bool), time.perf_counter() - t0)
                self.cache.put(key, entry)
            xs.append(entry.x_adv)
            ss.append(entry.success)
            seconds += entry.seconds
            self.emit(RunEvent(stage, b + 1, len(batches)))
        return np.concatenate(xs), np.concatenate(ss), seconds

    def correct(self, predict: Callable[[jax.Array, jax.Array], jax.Array], x: np.ndarray, y: np.ndarray,
                draws: int, stream: str) -> np.ndarray:
        """Bool ``[R, N]``: defended predictions == labels, for R draws of the defense's randomness."""
        skey = jax.random.fold_in(self.root, _stable_int(f"score|{stream}"))
        b = self.protocol.batch_size
        out = np.zeros((draws, len(x)), bool)
        for r in range(draws):
            kr = jax.random.fold_in(skey, r)
            for i in range(0, len(x), b):
                xb = x[i : i + b]
                pad = b - len(xb)
                if pad:
                    xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
                pred = np.asarray(predict(_place(xb), jax.random.fold_in(kr, i // b)))[: b - pad]
                out[r, i : i + b] = pred == y[i : i + b]
        return out

    def defense_cost_ms(self, clf: DefendedClassifier, batch: int = 128, seconds: float = 1.0) -> float:
        """Warm jitted preprocessing time of the defense, ms per image at ``batch``."""
        from bench.perf.timing import rate

        x = jnp.asarray(np.resize(self.x, (batch, *self.x.shape[1:])))
        return 1000.0 / rate(lambda: clf.preprocess(x, jax.random.key(0)), batch, seconds)

    # ------------------------------------------------------------------ the run
    def run(self, defense: Defense) -> dict[str, Any]:
        """Scores ``defense`` under the protocol; returns the results dict (``bench.results`` schema).

        Raises:
            ZooError: a member or the base model is not in the zoo. (A missing transfer source
                only skips the transfer level, recorded under ``"skipped"``.)
        """
        p = self.protocol
        t_start = time.perf_counter()
        clf = DefendedClassifier(defense, {m: self.model(m).logits_fn() for m in defense.members})
        draws = p.draws if defense.randomized else 1
        clean = self.correct(clf.predict, self.x, self.y, draws, "clean")
        base_clean = self.base_correct(p.base, self.x, self.y)
        entries, skipped = [], []
        models = {m: self.model(m).card["weights_sha256"] for m in {p.base, *defense.members}}
        for level in ("gray-box", "transfer", "adaptive"):
            plans = p.attacks_at(level)
            if not plans:
                continue
            if level == "transfer":
                try:
                    models[p.source] = self.model(p.source).card["weights_sha256"]
                except ZooError as e:
                    skipped.append({"knowledge": level, "reason": str(e)})
                    continue
            for plan in plans:
                entries.append(self._attack_entry(level, plan, defense, clf, draws, base_clean))
        return {
            "schema": SCHEMA_VERSION,
            "protocol": {"name": p.name, "version": p.version, "sha256": p.sha256},
            "defense": {"spec": defense.spec, "randomized": defense.randomized, "members": list(defense.members),
                        "vote": defense.vote},
            "data": self.data_info,
            "seed": p.seed,
            "draws": draws,
            "base_clean_accuracy": float(np.mean(base_clean)),
            "clean_accuracy": _stats(clean.mean(axis=1)),
            "attacks": entries,
            "skipped": skipped,
            "cost": {"defense_ms_per_image": self.defense_cost_ms(clf), "batch": 128},
            "provenance": {"versions": self.versions, "models": dict(sorted(models.items())),
                           "wall_time_s": time.perf_counter() - t_start,
                           "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "command": self.command},
        }

    def defense_code(self, defense: Defense) -> str:
        """Hash of the code a defense runs (hashed once per defense and runner)."""
        if defense.spec not in self._defense_code:
            files = [_ROOT / "defenses", _ROOT / "bench" / "defense.py", _ROOT / "bench" / "transform.py"]
            files += [Path(src) for t in defense.transforms if (src := inspect.getsourcefile(type(t)))]
            self._defense_code[defense.spec] = code_sha256(files)
        return self._defense_code[defense.spec]

    def _attack_entry(self, level: str, plan: AttackPlan, defense: Defense, clf: DefendedClassifier, draws: int,
                      base_clean: np.ndarray) -> dict[str, Any]:
        p = self.protocol
        attack = build_attack(plan.spec)
        pos = self.positions(plan)
        stage = f"{level} {attack!r}"
        eot = p.eot if (level == "adaptive" and defense.randomized) else 1
        if level == "adaptive":
            members = {m: self.model(m).card["weights_sha256"] for m in defense.members}
            views = [[repr(t), m, members[m]] for t, m in defense.views()]
            parts = {"knowledge": level, "defense": defense.spec, "views": views, "vote": defense.vote, "eot": eot,
                     "defense_code": self.defense_code(defense)}
            craft_batch = max(1, p.batch_size // (eot * len(views)))
            source = defense.spec
            ekey = jax.random.fold_in(self.root, _stable_int(f"eot|{defense.spec}|{attack!r}"))

            def logits_for_batch(b: int) -> Callable:
                calls = itertools.count()
                kb = jax.random.fold_in(ekey, b)
                return lambda x: clf.attack_logits(x, jax.random.split(jax.random.fold_in(kb, next(calls)), eot))
        else:
            source = p.base if level == "gray-box" else p.source
            parts = {"knowledge": level, "model": source, "model_sha256": self.model(source).card["weights_sha256"]}
            fn = self._logits(source)
            craft_batch = None

            def logits_for_batch(b: int) -> Callable:
                return fn

        x_adv, success, seconds = self.craft(stage, attack, pos, logits_for_batch, parts, craft_batch)
        x, y = self.x[pos], self.y[pos]
        delta = (x_adv - x).reshape(len(pos), -1)
        l2 = np.linalg.norm(delta, axis=1)
        thr = None
        if attack.minimum_norm:
            thr = p.l2_threshold
            counted = success & (l2 <= thr)
            x_adv = np.where(counted[:, None, None, None], x_adv, x)
        correct = self.correct(clf.predict, x_adv, y, draws, f"{level}|{attack!r}")
        eliminated = None
        if level != "adaptive":
            fooled = base_clean[pos] & ~self.base_correct(p.base, x_adv, y)
            if fooled.any():
                eliminated = float(np.mean(correct[:, fooled]))
        pert = None
        changed = success & (l2 > 0)
        if changed.any():
            med_l2 = float(np.median(l2[changed]))
            pert = {"linf": float(np.median(np.abs(delta[changed]).max(axis=1)) * 255.0), "l2": med_l2,
                    "rms": med_l2 / float(np.sqrt(delta.shape[1]))}
        return {
            "knowledge": level, "attack": repr(attack), "name": attack.spec_name, "norm": attack.norm,
            "eps": None if attack.minimum_norm else float(attack.eps), "source": source, "eot": eot,
            "n": int(len(pos)), "robust_accuracy": _stats(correct.mean(axis=1)),
            "attack_success": float(np.mean(success)), "eliminated": eliminated, "perturbation": pert,
            "l2_threshold": thr, "attack_s_per_image": seconds / len(pos),
        }
