"""The adaptive level's worst-case ensemble: every attack, every surrogate, survivors only.

A ``worst_case(attacks=..., check=...)`` attack (``attacks.worst_case``; Croce & Hein, ICML
2020, §5) is run on a defense as follows, one protocol batch ("unit") at a time:

1. **Selection draws.** The defended classifier scores the clean images under R fresh
   *selection* draws of its randomness (keys the final score never uses). An image it gets
   wrong in every draw is broken already (outcome 0).
2. **Stages.** The ensemble's attacks run in order, gradient attacks once per surrogate the
   defense offers (``Defense.surrogates``: the identity first, then e.g. JPEG's ``cubic`` and
   ``ste``, the median's ``own``), gradient-free ones once, then the ``check`` through every
   surrogate with 2K EOT samples, then the ``escalate`` attack with 2K EOT samples, per surrogate:
   round 1 through a surrogate whose check broke an image in this unit, round r + 1 through one
   whose round r broke an image (at most ``rounds``; breaks confirmed under fresh draws; see
   "Escalation" below). Each runs only on
   the images still *alive*: right in at least one selection draw under the best example found
   so far. Every new example is scored under
   selection draws, and per image the example the defense gets right least often is kept
   (ties keep the earlier one, an adversarial example over the clean image). The first stage
   that leaves an image wrong in every selection draw is its outcome.
3. **Score.** The kept examples are scored under the protocol's R scoring draws, exactly as any
   other attack's examples (``Runner.correct``); that is the entry's robust accuracy, the
   per-image worst case over the ensemble.

For a deterministic defense (R = 1) this is "an image is robust when no stage fools the
defense". Working unit by unit, with keys and cache entries numbered from the unit's batch
number, keeps a protocol split into shards (``bench.eval.jobs``) equal to the unsplit run.
The first stage, when it uses the default surrogate, is crafted on the whole unit with exactly
the batches, keys and cache entries of the same attack run alone at the adaptive level: a
protocol that keeps its v1 attack beside the ensemble crafts it once, and per image the
ensemble does at least as well. Later stages craft the survivors in chunks of 32, the last
chunk padded (by repeating an image) to 8, 16 or 32 images, whichever is the smallest that
holds it, so each (attack, surrogate) compiles for at most three batch shapes. A step's time is
about linear in the batch (APGD through ``tvd``'s own gradient: 0.105, 0.196 and 0.352 s at 8,
16 and 32 images), and later stages often see a handful of survivors, so padding every chunk
to 32 spent most of their time on copies.

**Escalation, per surrogate.** Until the four randomized rows of ``cifar10-standard-v2``, a
round ran through *every* surrogate while any stage of the round before broke an image. On the
19 deterministic rows every image an escalation round broke came through a surrogate whose
check had broken an image in the same unit (``jpeg(quality=75)`` and ``fd(passes=2)`` at
4/255: cubic, 3 and 1 images; ``tvd(weight=0.05)``: own, 1), and no identity round broke
anything; so the per-surrogate rule gives those rows the same outcome for every image (their
stored stage records still show the rounds the old rule ran). On a randomized defense a check
breaks an image or two through one surrogate by the luck of its EOT draws, and each round
through every surrogate cost about 1.5 h per 250-image unit on 2 CPU cores (``slq()`` at
4/255: the check broke 1 of 38 survivors, through ``ste``; the identity round then broke none
of them in 32 min). A surrogate that breaks nothing has converged; one that still breaks images
is escalated until it stops, as before.

**Confirmed breaks (randomized defenses).** A check "breaks" an image when its new example is
wrong in all R selection draws. For an image the defense gets right in one draw of four, that
happens by luck in about one try of four (0.75^5 = 0.24 at R = 5), however strong the attack:
on ``quilting()`` at 8/255 the first unit's check broke 8 survivors, of which 1 was wrong again
in R fresh draws; on ``slq()`` at 4/255 the check broke 1 (``ste``) and 3 (``cubic``) in its two
units, and fresh draws confirmed 0 and 1. So the escalation counts only *confirmed* breaks: the
examples a check or round broke are scored once more under R draws of their own
(``confirmed_breaks``; a deterministic defense is confirmed as it is). The breaks themselves,
the kept examples and the outcomes are unchanged; only whether a round runs is. Replayed from
the cache, ``slq()``'s committed 4/255 entry loses the ``ste`` round of its first unit (37
images, 24 min, broke nothing) and keeps every image's outcome and every scoring draw's
prediction; the deterministic rows are unaffected.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from attacks.specs import Attack, build_attack
from attacks.worst_case import WorstCase
from bench.core.defense import DefendedClassifier, Defense
from bench.eval.metrics import Stage

if TYPE_CHECKING:
    from bench.eval.runner import Runner

CHUNK = 32
"""Survivors are attacked in chunks of this many images (padded), after the first stage."""


def pad_sizes(chunk: int) -> tuple[int, ...]:
    """The batch sizes a chunk of at most ``chunk`` survivors is padded to: ``chunk`` / 4, / 2 and itself."""
    return tuple(sorted({max(1, chunk // 4), max(1, chunk // 2), chunk}))


@dataclasses.dataclass(frozen=True)
class PlannedStage:
    """One stage to run: an attack, its surrogate (None: gradient-free), whether it is the check.

    ``round`` is 0 except for the escalation's stages (1, 2, ...), which count as checks.
    """

    attack: Attack
    surrogate: str | None
    check: bool
    round: int = 0

    @property
    def label(self) -> str:
        return repr(self.attack) + (f" via {self.surrogate}" if self.surrogate else "")


def plan_stages(ensemble: WorstCase, defense: Defense) -> list[PlannedStage]:
    """The ensemble's stages on ``defense``, expanded over its surrogates, in running order."""
    specs = [(s, False, 0) for s in ensemble.attacks] + ([(ensemble.check, True, 0)] if ensemble.check else [])
    if ensemble.escalate:
        specs += [(ensemble.escalate, True, r) for r in range(1, ensemble.rounds + 1)]
    out = []
    for spec, check, round_ in specs:
        attack = build_attack(spec)
        surrogates = (None,) if attack.gradient_free else defense.surrogates()
        out += [PlannedStage(attack, s, check, round_) for s in surrogates]
    return out


def escalates(broke: dict[tuple[int, str | None], int], round_: int, surrogate: str | None) -> bool:
    """Whether escalation round ``round_`` (>= 1) runs through ``surrogate`` in a unit.

    ``broke`` maps ``(round, surrogate)`` (round 0: the check) to the images that stage broke in
    the unit. Round ``r`` runs through a surrogate while round ``r - 1`` broke an image through the
    same surrogate; where round ``r - 1`` has no stage through it (a gradient-free check), while
    round ``r - 1`` broke an image at all.
    """
    before = {sur: n for (r, sur), n in broke.items() if r == round_ - 1}
    if surrogate in before:
        return before[surrogate] > 0
    return sum(before.values()) > 0


def confirmed_breaks(runner: Runner, clf: DefendedClassifier, x: np.ndarray, y: np.ndarray, draws: int,
                     stream: str, batch: int) -> int:
    """How many of the images a check (or round) broke are wrong again under R fresh draws.

    An image a check broke is wrong in every selection draw. For a randomized defense that can be
    the luck of the draws rather than a stronger attack; the escalation only counts the breaks
    that *confirmation* draws (a stream of their own, keyed by ``stream`` and the unit's batch
    number) confirm. A deterministic defense (R = 1) is confirmed without scoring again.

    Args:
        runner: the runner (scoring).
        clf: the defended classifier.
        x: float32 ``[N, H, W, C]``, the examples that broke their images; y: int ``[N]`` labels.
        draws: R.
        stream, batch: the confirmation draws' stream and the unit's batch number.
    """
    if draws == 1 or len(y) == 0:
        return len(y)
    return int(np.sum(runner.correct(clf.predict_draws, x, y, draws, stream, batch).mean(axis=0) == 0))


@dataclasses.dataclass
class WorstCaseRun:
    """What the ensemble found on a shard's images (before the final scoring)."""

    x_adv: np.ndarray  # float32 [n, H, W, C]: the kept example per image
    outcome: np.ndarray  # int8 [n]: see bench.eval.metrics
    stages: tuple[Stage, ...]
    seconds: float


def run_worst_case(runner: Runner, ensemble: WorstCase, defense: Defense, clf: DefendedClassifier, draws: int,
                   eot: int, first: int, units: list[np.ndarray], key_parts: dict[str, Any]) -> WorstCaseRun:
    """Runs ``ensemble`` on the images of ``units`` (protocol batches numbered from ``first``).

    Args:
        runner: the runner (data, cache, scoring).
        ensemble: the worst-case attack.
        defense, clf: the defense and its classifier.
        draws: R, selection (and scoring) draws.
        eot: K, EOT samples for randomized defenses (the check uses 2K).
        first: batch number of ``units[0]``.
        units: positions of each protocol batch of the shard.
        key_parts: what the adaptive examples depend on besides the stage (cache key).
    """
    stages = plan_stages(ensemble, defense)
    n_base = sum(st.round == 0 for st in stages)
    views = len(defense.views())
    ran, secs = np.zeros(len(stages), np.int64), np.zeros(len(stages))
    xs, outs = [], []
    # the stages before the escalation keep the keys and cache entries of the same ensemble
    # without one: adding an escalation to a protocol re-crafts nothing
    name, full = repr(ensemble.base()), repr(ensemble)
    for j, unit in enumerate(units):
        b = first + j
        x, y = runner.x[unit], runner.y[unit]
        best_x = x.copy()
        best = runner.correct(clf.predict_draws, x, y, draws, f"select|{name}|clean", b).mean(axis=0)
        adversarial = np.zeros(len(unit), bool)
        outcome = np.where(best == 0, 0, -1).astype(np.int8)
        broke: dict[tuple[int, str | None], int] = {}  # (round (0: the check), surrogate) -> images it broke
        for s, st in enumerate(stages, start=1):
            alive = np.nonzero(best > 0)[0]
            if len(alive) == 0:
                break
            if st.round and not escalates(broke, st.round, st.surrogate):
                broke[st.round, st.surrogate] = 0  # converged through this surrogate: its later rounds stop too
                continue
            label = (f"{st.label} [{s}/{n_base}]" if not st.round
                     else f"{st.label} [escalation {st.round}/{ensemble.rounds}, stage {s}]")
            ensemble_key = full if st.round else name
            k = (2 * eot if st.check else eot) if defense.randomized else 1
            target = clf.target(st.surrogate or defense.surrogates()[0], k)
            if s == 1 and st.surrogate in (None, defense.surrogates()[0]) and not st.check:
                # exactly the standalone adaptive attack's batches, keys and cache entries: a
                # protocol that also runs it alone pays once, and per image the ensemble can only
                # do better than it did
                x_all, _, seconds = runner.craft(f"adaptive {st.attack!r}", st.attack,
                                                 runner.adaptive_batches([unit], b, k, views),
                                                 lambda _b, t=target: t, key_parts)
                x_adv, crafted = x_all[alive], len(unit)
            else:
                chunk = min(CHUNK, max(1, runner.protocol.batch_size // (k * views)))
                per_unit = -(-runner.protocol.batch_size // chunk)
                batches = [(b * per_unit + i // chunk, unit[alive[i : i + chunk]]) for i in range(0, len(alive), chunk)]
                parts = {**key_parts, "eot": k, "surrogate": st.surrogate, "stage": s, "ensemble": ensemble_key}
                x_adv, _, seconds = runner.craft(f"adaptive {label}", st.attack, batches,
                                                 lambda _b, t=target: t, parts, pad_to=pad_sizes(chunk))
                crafted = len(alive)
            y_alive, stream = y[alive], f"select|{ensemble_key}|{s}"
            rate = runner.correct(clf.predict_draws, x_adv, y_alive, draws, stream, b).mean(axis=0)
            better = (rate < best[alive]) | ((rate == best[alive]) & ~adversarial[alive])
            idx = alive[better]
            best_x[idx], best[idx], adversarial[idx] = x_adv[better], rate[better], True
            fell = rate == 0
            outcome[alive[fell]] = s
            if st.check:  # one stage per (round, surrogate)
                broke[st.round, st.surrogate] = confirmed_breaks(runner, clf, x_adv[fell], y_alive[fell], draws,
                                                                 f"confirm|{ensemble_key}|{s}", b)
            ran[s - 1] += crafted
            secs[s - 1] += seconds
        xs.append(best_x)
        outs.append(outcome)
    recorded = tuple(Stage(repr(st.attack), st.surrogate, st.check, int(ran[i]), float(secs[i]), st.round)
                     for i, st in enumerate(stages))
    shape = (0, *runner.x.shape[1:])
    return WorstCaseRun(np.concatenate([np.zeros(shape, np.float32), *xs]),
                        np.concatenate([np.zeros(0, np.int8), *outs]), recorded, float(secs.sum()))
