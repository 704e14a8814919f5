"""Exported adversarial examples: a defense's attacked images with their indices, for outsiders.

RobustBench asks external evaluations for the adversarial examples behind a number; this
module writes them so anyone can re-score them on the defense or run another attack on the
same images. ``export_examples`` crafts (or reads from the cache) one attack's examples on a
defense under a protocol and writes an ``.npz`` holding:

* ``x_adv``: float32 ``[n, H, W, C]`` in [0, 1], lossless (the scored images: for a minimum-norm
  attack, the clean image where it failed or exceeded the L2 threshold);
* ``indices``: int64 ``[n]``, the images' indices in the dataset split (``positions`` into the
  protocol's index set are stored too), ``labels``: int64 ``[n]``;
* ``outcome``: int8 ``[n]`` for a worst-case ensemble (``bench.eval.metrics``), else absent;
* ``meta``: JSON with the protocol (name, version, sha256), the defense spec, the attack spec and
  knowledge level, the data source checksum and how to re-score.

``load_examples`` reads it back. Written atomically.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.defense import DefendedClassifier, Defense
from bench.core.io import atomic_write_bytes
from bench.eval.protocol import AttackPlan
from bench.eval.runner import Runner


def find_plan(runner: Runner, level: str, spec: str | None) -> AttackPlan:
    """The protocol's plan for ``spec`` at ``level``; by default its strongest adaptive entry.

    Without ``spec``: the worst-case ensemble with the largest budget if the level has one,
    else the level's only attack.

    Raises:
        ValueError: no such attack at that level (the message lists the level's attacks).
    """
    from bench.eval.results import canonical_attack

    plans = runner.protocol.attacks_at(level)
    if spec is not None:
        want = canonical_attack(spec)
        for plan in plans:
            if canonical_attack(plan.spec) == want:
                return plan
    else:
        ensembles = [p for p in plans if p.spec.startswith("worst_case")]
        if ensembles:
            from attacks.specs import build_attack

            return max(ensembles, key=lambda p: build_attack(p.spec).eps)
        if len(plans) == 1:
            return plans[0]
    known = "; ".join(p.spec for p in plans) or "none"
    raise ValueError(f"protocol {runner.protocol.name} has no {level} attack {spec or '(choose one)'!r}; "
                     f"its {level} attacks: {known}")


def export_examples(runner: Runner, defense: Defense, level: str, plan: AttackPlan, path: Path) -> dict[str, Any]:
    """Writes the examples of ``plan`` at ``level`` on ``defense`` to ``path``; returns the meta dict."""
    p = runner.protocol
    defense = defense.on_base(p.base)  # a bare transform is scored in front of the protocol's base model
    clf = DefendedClassifier(defense, {m: runner.model(m).logits_fn() for m in defense.members})
    draws = p.draws if defense.randomized else 1
    c = runner.crafted(level, plan, defense, clf, draws)
    x = runner.x[c.positions]
    x_adv = c.x_adv
    if c.attack.minimum_norm:  # scored as the runner scores them
        l2 = np.linalg.norm((x_adv - x).reshape(len(x), -1).astype(np.float64), axis=1)
        x_adv = np.where((c.success & (l2 <= p.l2_threshold))[:, None, None, None], x_adv, x)
    meta = {"protocol": p.header(), "defense": defense.spec,
            "knowledge": level, "attack": repr(c.attack), "data": runner.data_info,
            "rescore": "the defended classifier's prediction on x_adv[i] vs labels[i]; indices are positions in "
                       f"the {p.dataset}/{p.split} split"}
    arrays = {"x_adv": np.asarray(x_adv, np.float32), "indices": runner.indices[c.positions].astype(np.int64),
              "positions": c.positions.astype(np.int64), "labels": runner.y[c.positions].astype(np.int64),
              "meta": np.array(json.dumps(meta, sort_keys=True))}
    if c.outcome is not None:
        arrays["outcome"] = c.outcome.astype(np.int8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(Path(path), buf.getvalue())
    return meta


def load_examples(path: Path) -> dict[str, Any]:
    """The arrays of an exported file (``meta`` parsed), as a dict."""
    with np.load(Path(path), allow_pickle=False) as z:
        out = {k: np.asarray(z[k]) for k in z.files}
    out["meta"] = json.loads(str(out["meta"]))
    return out
