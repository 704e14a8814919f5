"""Leaderboard markdown rendered from the results store, and the CI regression comparison.

``leaderboards/<protocol>.md`` is generated from ``leaderboards/results/<protocol>/*.json``
(docs/design.md#results-and-reports) and never edited by hand; :func:`write_leaderboards` with ``check=True`` finds
stale pages. Rendering is deterministic: the same results give the same bytes (no timestamps,
no wall times).

Headline numbers (one row per defense):

* **Clean**: clean accuracy of the defended classifier (``clean_accuracy.mean``).
* **Gray-box / Transfer / Adaptive**: for each knowledge level, the *minimum* over that
  level's Linf attacks at eps = 8/255 of ``robust_accuracy.mean`` (the worst case over
  attacks); ``None`` (shown "—") when the level has no such attack.
* **Eliminated**: the ``eliminated`` value of the gray-box attack that achieved the gray-box
  minimum: of the adversarial examples that fool the bare base model, the fraction the
  defended classifier gets right.
* **ms/img**: defense preprocessing time per image (batch 128, jitted, warm).

Rows are ranked by adaptive (missing last) descending, then gray-box descending, then spec.
Randomized defenses show accuracies as ``mean ± std`` over the R draws.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.core.io import shell_join
from bench.eval.protocol import fingerprint
from bench.eval.results import KNOWLEDGE_LEVELS, results_root
from bench.eval.schema import AttackEntry, Result, StageOutcome, Stats
from bench.eval.sanity import EXPLANATIONS, ensemble_flags, sanity_flags
from bench.reports.report import Report, Store, register_report

HEADLINE_EPS = 8.0
_LEVEL_TITLES = {"gray-box": "Gray-box", "transfer": "Transfer", "adaptive": "Adaptive"}
_DASH = "—"


# ------------------------------------------------------------------------------------ headline
def _attack_order(entry: AttackEntry) -> tuple[Any, ...]:
    eps = entry.eps
    return (entry.name, eps is None, eps if eps is not None else 0.0, entry.attack)


def worst_entry(result: Result, level: str, eps: float = HEADLINE_EPS, subsets: bool = False) -> AttackEntry | None:
    """The level's Linf entry at ``eps`` with the lowest robust accuracy (ties: a worst-case ensemble,
    which is the headline by definition where the protocol has one, then attack order).

    Only entries scored on the protocol's whole image set count (an attack run on a subset,
    e.g. a sanity check, would put other images and more noise into the headline), unless
    ``subsets`` is set.
    """
    n = result.data.n
    candidates = [e for e in result.at(level) if e.norm == "linf" and e.eps is not None
                  and abs(e.eps - eps) < 1e-9 and (subsets or (e.n or n) == n)]
    if not candidates:
        return None
    return min(candidates, key=lambda e: (e.robust, not e.is_ensemble, _attack_order(e)))


@dataclass(frozen=True)
class Headline:
    """The headline numbers of one result (see the module docstring for their definitions).

    Accuracies are fractions; a level is ``None`` where it has no Linf eps = 8 attack.
    """

    clean: float
    levels: dict[str, float | None]
    eliminated: float | None
    defense_ms: float

    @property
    def gray_box(self) -> float | None:
        return self.levels["gray-box"]

    @property
    def transfer(self) -> float | None:
        return self.levels["transfer"]

    @property
    def adaptive(self) -> float | None:
        return self.levels["adaptive"]


def headline(result: Result) -> Headline:
    """The headline numbers of one result."""
    worst = {level: worst_entry(result, level) for level in KNOWLEDGE_LEVELS}
    gray = worst["gray-box"]
    return Headline(result.clean_accuracy.mean, {lv: None if e is None else e.robust for lv, e in worst.items()},
                    None if gray is None else gray.eliminated, result.cost.defense_ms_per_image)


def _rank_key(result: Result) -> tuple[Any, ...]:
    h = headline(result)
    adaptive, gray = h.adaptive, h.gray_box
    return (adaptive is None, -(adaptive or 0.0), gray is None, -(gray or 0.0))


def _sorted(results: Iterable[Result]) -> list[Result]:
    return sorted(results, key=lambda r: (*_rank_key(r), r.spec))


# ---------------------------------------------------------------------------------- formatting
def format_pct(value: float | None) -> str:
    """``0.845 -> "84.5%"``; ``None -> "—"``."""
    return _DASH if value is None else f"{100.0 * value:.1f}%"


def _acc(stats: Stats | None, randomized: bool) -> str:
    """``"84.5%"``, or ``"84.5 ± 1.2%"`` for a randomized defense; "—" when missing."""
    if stats is None:
        return _DASH
    if randomized:
        return f"{100.0 * stats.mean:.1f} ± {100.0 * stats.std:.1f}%"
    return format_pct(stats.mean)


def _display_command(command: str) -> str:
    """A stored command line re-quoted for reading (``bench.core.io.shell_join``): the same words.

    Only a line that ``shlex.join`` wrote is re-quoted; one with shell operators (``|``) or
    its own quoting is shown as stored.
    """
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    return shell_join(words) if shlex.join(words) == command else command


def _code(text: str) -> str:
    """``text`` as an inline code span that is safe inside a GitHub table cell."""
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def _cell(entry: AttackEntry | None, randomized: bool) -> str:
    if entry is None:
        return _DASH
    acc = _acc(entry.robust_accuracy, randomized)
    if entry.eps is not None:
        return acc
    pert = entry.perturbation
    median = _DASH if pert is None else f"{pert.l2:.2f}"
    thr = entry.l2_threshold
    return f"{acc} @L2<={thr:g} (median L2 {median})"


def _table(rows: list[list[str]], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


# -------------------------------------------------------------------------------------- render
def _protocol_lines(protocol: str, results: list[Result]) -> list[str]:
    """The protocol summary line, plus warning lines where the results disagree."""

    def most_common(values: list[Any]) -> Any:
        counts = Counter(values)
        return min(counts, key=lambda v: (-counts[v], repr(v)))

    # results agree on the protocol when they agree on its identity (bench.eval.protocol); older ones
    # carry only the file's sha256. The line shows the file most results were scored under.
    protos = [(r.protocol.name, r.protocol.version, *fingerprint(r.protocol.to_json())) for r in results]
    shas = [r.protocol.sha256 for r in results]
    datas = [(r.data.dataset, r.data.split, r.data.n, r.data.indices_sha256, r.data.source_sha256) for r in results]
    _, version, _, _ = most_common(protos)
    sha = most_common(shas)
    dataset, split, n, _, _ = most_common(datas)
    draws = sorted({r.draws for r in results if r.randomized})
    if draws:
        r_text = f"randomized defenses scored over R = {', '.join(map(str, draws))} independent draws"
    else:
        r_text = "no randomized defenses (R = 1)"
    lines = [f"Protocol {_code(protocol)} v{version} (sha256 {sha[:12]}) · {dataset}/{split}, n = {n} images · "
             f"{r_text}."]
    if len(set(protos)) > 1:
        seen = ", ".join(f"{name} v{v} ({kind} {h[:12]}): {c} file{'s' if c > 1 else ''}"
                         for (name, v, kind, h), c in sorted(Counter(protos).items()))
        lines.append(f"> **Warning:** the results disagree on the protocol ({seen}); re-run the outdated rows.")
    if len(set(datas)) > 1:
        seen = ", ".join(f"{d}/{sp} n = {k} (indices {h[:12] if h else _DASH}, source {src[:12]}): "
                         f"{c} file{'s' if c > 1 else ''}"
                         for (d, sp, k, h, src), c in sorted(Counter(datas).items(), key=lambda kv: repr(kv[0])))
        lines.append(f"> **Warning:** the results were scored on different images ({seen}).")
    return lines


_NOTES = """\
Columns: **Clean** is the accuracy of the defended classifier on the clean images.
**Gray-box**, **Transfer** and **Adaptive** are, for each knowledge level, the *minimum* over that
level's Linf attacks at eps = 8/255 on the whole image set of the robust accuracy (worst case over
attacks; "—" when the level has no such attack). Gray-box attacks are crafted on the bare base model, transfer attacks
on an independently trained source model, adaptive attacks on the whole defended pipeline (BPDA,
EOT over K samples per step for randomized defenses). **Eliminated** is, for the gray-box attack
that achieved the gray-box minimum, the fraction of the adversarial examples fooling the bare
base model that the defended classifier gets right. **ms/img** is the defense's preprocessing
time per image (batch 128, jitted, warm). Randomized defenses show mean ± std over R draws of
their randomness. Rows are ranked by Adaptive (missing last), then Gray-box, then spec;
**Command** reproduces the row."""


def _detail(level: str, ordered: list[Result]) -> list[str]:
    entries = {(r.spec, e.attack): e for r in ordered for e in r.at(level)}
    columns: dict[str, AttackEntry] = {}
    for e in sorted(entries.values(), key=_attack_order):
        columns.setdefault(e.attack, e)
    rows = []
    for r in ordered:
        spec, randomized = r.spec, r.randomized
        rows.append([_code(spec), *(_cell(entries.get((spec, a)), randomized) for a in columns)])
    headers = ["Defense", *(_column_name(e).replace("|", "\\|") for e in columns.values())]
    if level == "adaptive":
        eots = sorted({e.eot for e in entries.values() if e.eot > 1})
        how = "crafted through each defended pipeline (BPDA" + (
            f"; EOT with K = {', '.join(map(str, eots))} for randomized defenses)" if eots else ")")
    else:
        sources = sorted({e.source for e in entries.values()})
        how = f"crafted on {', '.join(_code(s) for s in sources)}"
    note = f"Robust accuracy per attack, {how}. Linf budgets in /255."
    ensembles = [e.attack for e in columns.values() if e.is_ensemble]
    if ensembles:
        note += (" A `worst_case(eps=...)` column is the per-image worst case over an attack ensemble run through "
                 "every surrogate gradient of the defense (see *Adaptive worst case, stage by stage*): " +
                 "; ".join(_code(a) for a in ensembles) + ".")
    if any(e.eps is None for e in columns.values()):
        note += (" Minimum-norm attacks count an example as attacked only when its L2 perturbation is at most "
                 "the threshold; the median L2 is over the examples the attack fooled on its crafting model.")
    return [f"## {_LEVEL_TITLES[level]} attacks", "", note, "", _table(rows, headers), ""]


def _column_name(entry: AttackEntry) -> str:
    """A column's title: the attack spec, or ``worst_case(eps=8)`` for an ensemble (its spec is long)."""
    return f"worst_case(eps={entry.eps:g})" if entry.is_ensemble else entry.attack


def _stage_label(st: StageOutcome) -> str:
    via = f" via {st.surrogate}" if st.surrogate else ""
    return f"{'check ' if st.check else ''}{st.attack}{via}"


def _worst_case_detail(ordered: list[Result]) -> list[str]:
    """Per defense and ensemble: the stages that ran, what each broke, and the robust fraction after it."""
    rows = []
    for r in ordered:
        for e in sorted((e for e in r.attacks if e.is_ensemble), key=lambda e: -e.eps):
            steps = [f"{_stage_label(st)}: {format_pct(st.robust_after)} (−{st.broke} of {st.ran})"
                     for st in e.stages if st.broke]
            idle = sum(1 for st in e.stages if st.ran and not st.broke)
            if idle:
                steps.append(f"{idle} more stage{'s' if idle > 1 else ''} broke none")
            clean_wrong = e.outcomes.count("0")
            rows.append([_code(r.spec), f"{e.eps:g}", str(e.n), str(clean_wrong),
                         " → ".join(steps) or _DASH, " ".join(ensemble_flags(e)) or _DASH])
    if not rows:
        return []
    note = ("Each ensemble runs its attacks in order, each only on the images every earlier stage left robust, "
            "gradient attacks once per surrogate the defense offers. Per stage that broke images: the robust "
            "fraction left after it and (−images it broke of the images it ran on), judged under selection draws of the defense's "
            "randomness; the headline scores the kept examples under fresh draws. **Clean wrong**: images the "
            "defense already misclassifies clean. Per-image outcomes are in the results files (`outcomes`).")
    table = _table(rows, ["Defense", "eps", "n", "Clean wrong", "Stages: robust after (−broke of ran)", "Flags"])
    return ["## Adaptive worst case, stage by stage", "", note, "", table, ""]


def headline_table(results: list[Result], flags_of: dict[str, list[str]] | None = None) -> str:
    """The ranked headline table (one row per defense), as on the leaderboard page.

    Args:
        results: results, in any order.
        flags_of: spec -> sanity flags (computed when not given).
    """
    ordered = _sorted(results)
    if flags_of is None:
        flags_of = {r.spec: sanity_flags(r) for r in ordered}
    rows, rank, previous = [], 0, None
    for i, r in enumerate(ordered, start=1):
        key = _rank_key(r)
        if key != previous:
            rank, previous = i, key
        h, rnd = headline(r), r.randomized
        worst = {level: worst_entry(r, level) for level in KNOWLEDGE_LEVELS}
        rows.append([
            str(rank), _code(r.spec), _acc(r.clean_accuracy, rnd),
            *(_acc(None if worst[lv] is None else worst[lv].robust_accuracy, rnd) for lv in KNOWLEDGE_LEVELS),
            format_pct(h.eliminated), f"{h.defense_ms:.2f}", " ".join(flags_of[r.spec]) or _DASH,
            _code(_display_command(r.provenance.command)),
        ])
    headers = ["Rank", "Defense", "Clean", "Gray-box", "Transfer", "Adaptive", "Eliminated", "ms/img", "Flags",
               "Command"]
    return _table(rows, headers)


def _skipped_lines(results: list[Result]) -> list[str]:
    """One note per (level, reason) that results skipped, so a "—" is not read as "no such attack"."""
    skipped: dict[tuple[str, str], list[str]] = {}
    for r in results:
        for s in r.skipped or ():
            skipped.setdefault((s.knowledge.value, s.reason), []).append(r.spec)
    lines = []
    for (level, reason), specs in sorted(skipped.items()):
        who = "every row" if len(specs) == len(results) else ", ".join(_code(s) for s in specs)
        lines += [f"> **Incomplete:** the {level} attacks were skipped for {who} ({reason}); re-run those rows.", ""]
    return lines


def listed_defenses(protocol: str) -> tuple[str, ...] | None:
    """The defenses ``protocol`` lists, as its file writes them; None when ``protocol`` is not a
    protocol this checkout knows (results from elsewhere)."""
    from bench.eval.protocol import ProtocolError, load_protocol

    try:
        return load_protocol(protocol).defenses
    except ProtocolError:
        return None


def unscored(listed: Sequence[str], results: list[Result]) -> list[str]:
    """The defenses of ``listed`` (a protocol's list) that have no result among ``results`` (a board
    still being scored), as the protocol writes them."""
    from bench.core.defense import build_defense

    have = {r.spec for r in results}
    # a result names its defense by the canonical spec: tvm() is scored as tvm(drop=0.5, weight=0.03)
    return [s for s in listed if s not in have and build_defense(s).spec not in have]


def _unscored_lines(protocol: str, results: list[Result]) -> list[str]:
    """A note naming the protocol's defenses that have no result yet."""
    listed = listed_defenses(protocol)
    missing = [] if listed is None else unscored(listed, results)
    if not missing:
        return []
    return [f"> **Partial board:** {len(missing)} of the protocol's {len(listed)} defenses have no "
            f"result yet ({', '.join(_code(s) for s in missing)}).", ""]


GENERATED = "<!-- generated by `shieldbench leaderboard`"
"""How every leaderboard page begins (``leaderboard --check`` also finds pages whose results are gone)."""


def render(protocol: str, results: list[Result]) -> str:
    """Renders the leaderboard page of a protocol (deterministic GitHub markdown).

    Args:
        protocol: protocol name (the results directory's name).
        results: the results of that protocol, in any order.
    """
    lines = [f"{GENERATED} from leaderboards/results/{protocol}/*.json; "
             "do not edit by hand -->", "", f"# Leaderboard: {protocol}", ""]
    if not results:
        lines += [f"No results yet for protocol {_code(protocol)}. Score a defense with "
                  f"`shieldbench run --protocol {protocol} --defense '<spec>'`, then re-render with "
                  "`shieldbench leaderboard`.", ""]
        return "\n".join(lines)
    ordered = _sorted(results)
    flags_of = {r.spec: sanity_flags(r) for r in ordered}
    lines += [*_protocol_lines(protocol, ordered), ""]
    if any(r.protocol.name != protocol for r in ordered):
        lines += [f"> **Warning:** some results name another protocol than {_code(protocol)}.", ""]
    lines += _skipped_lines(ordered) + _unscored_lines(protocol, ordered)
    lines += [headline_table(ordered, flags_of), "", _NOTES, ""]
    raised = sorted({f for fl in flags_of.values() for f in fl})
    lines += ["**Flags** (evaluation sanity checks, Carlini et al. 2019; see `bench/eval/sanity.py`): " +
              ("; ".join(f"`{f}`: {EXPLANATIONS[f]}" for f in raised) if raised else "none raised") + ".", ""]
    for level in KNOWLEDGE_LEVELS:
        if any(r.at(level) for r in ordered):
            lines += _detail(level, ordered)
    lines += _worst_case_detail(ordered)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- writing
def leaderboard_path(protocol: str, out_dir: Path | None = None) -> Path:
    """``out_dir / f"{protocol}.md"``; ``out_dir`` defaults to ``leaderboards/`` in the checkout."""
    return Path(results_root().parent if out_dir is None else out_dir) / f"{protocol}.md"


@register_report("leaderboard")
class LeaderboardPages(Report):
    """One page per protocol with results, ``<pages>/<protocol>.md`` (``out``: another directory)."""

    def __init__(self, out: str | None = None) -> None:
        self.out = out

    def _dir(self, store: Store) -> Path:
        return Path(self.out) if self.out is not None else store.pages

    def render(self, store: Store) -> dict[Path, str | bytes]:
        return {leaderboard_path(p, self._dir(store)): render(p, store.results_of(p)) for p in store.protocols()}

    def orphans(self, store: Store) -> dict[Path, str]:
        have, out = set(store.protocols()), {}
        for page in sorted(self._dir(store).glob("*.md")):
            try:
                first = page.read_text(encoding="utf-8").split("\n", 1)[0]
            except (OSError, UnicodeDecodeError):
                continue
            if first.startswith(GENERATED) and page.stem not in have:
                out[page] = f"its results {store.results / page.stem} are gone: delete the page or restore them"
        return out


def write_leaderboards(results_root: Path, out_dir: Path, check: bool = False) -> list[Path]:
    """Renders the page of every protocol with results (the ``leaderboard`` report alone).

    Args:
        results_root: the results store root (``<root>/<protocol>/*.json``).
        out_dir: where the ``<protocol>.md`` pages go.
        check: write nothing; report the pages that are missing or differ from the render.

    Returns:
        With ``check``, the stale or missing pages; otherwise the pages written (unchanged
        pages are left alone and not listed).

    Raises:
        ResultsError: a results file is invalid.
    """
    from bench.reports.report import run

    return run(Store.at(results_root), [LeaderboardPages(str(out_dir))], check=check).changed


# ---------------------------------------------------------------------------------- comparison
@dataclass(frozen=True)
class Change:
    """A number that moved beyond the tolerance, or exists on one side only (the other ``None``)."""

    defense: str
    metric: str
    stored: float | None
    fresh: float | None
    allowed: float | None = field(default=None, compare=False)  # the tolerance it was held to

    @property
    def delta(self) -> float | None:
        """``fresh - stored``, or ``None`` when either side is missing."""
        return None if self.stored is None or self.fresh is None else self.fresh - self.stored


def _metrics(result: Result) -> dict[str, float]:
    """Metric name -> value: ``"clean"`` and ``"<knowledge> <attack spec>"`` robust accuracies."""
    out = {"clean": result.clean_accuracy.mean}
    order = {lv: i for i, lv in enumerate(KNOWLEDGE_LEVELS)}
    for e in sorted(result.attacks, key=lambda e: (order[e.knowledge], *_attack_order(e))):
        out[f"{e.knowledge.value} {e.attack}"] = e.robust
    return out


def compare(stored: list[Result], fresh: list[Result], tolerance: float | None) -> list[Change]:
    """Compares fresh results against stored ones (the CI regression mode).

    Results are matched by defense spec and attack entries by (knowledge, attack spec); clean
    accuracy and every robust accuracy are compared. A defense only in ``stored`` is ignored
    (a check may re-run a subset); everything else present on one side only is reported.

    Args:
        stored: the reference results.
        fresh: the re-run results.
        tolerance: the largest allowed ``|fresh - stored|`` (a fraction, e.g. 0.01 = 1 point), or
            ``None`` for each number's own sampling noise (``bench.eval.reproduce.noise_tolerance``).

    Returns:
        The changes, ordered by defense spec, then clean first, then by knowledge and attack.
    """
    from bench.eval.reproduce import noise_tolerance

    if tolerance is not None and not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    by_spec = {r.spec: r for r in stored}
    before = {spec: _metrics(r) for spec, r in by_spec.items()}
    after = {r.spec: _metrics(r) for r in fresh}
    changes = []
    for spec in sorted(after):
        now, then = after[spec], before.get(spec, {})
        names = list(now) + [m for m in then if m not in now]
        for metric in names:
            allowed = tolerance
            if allowed is None and metric in then:
                allowed = noise_tolerance(by_spec[spec], metric)
            change = Change(spec, metric, then.get(metric), now.get(metric), allowed)
            if change.delta is None or abs(change.delta) > allowed + 1e-12:
                changes.append(change)
    return changes


def format_changes(changes: list[Change]) -> str:
    """A GitHub-markdown table of changes (accuracies in %, delta in points); ``"no changes"`` if none."""
    if not changes:
        return "no changes"

    def pct(v: float | None) -> str:
        return "missing" if v is None else f"{100.0 * v:.2f}%"

    rows = [[c.defense, c.metric, pct(c.stored), pct(c.fresh),
             _DASH if c.delta is None else f"{100.0 * c.delta:+.2f} pp",
             _DASH if c.allowed is None else f"{100.0 * c.allowed:.2f} pp"] for c in changes]
    return _table(rows, ["defense", "metric", "stored", "fresh", "delta", "allowed"])
