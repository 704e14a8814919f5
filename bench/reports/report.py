"""One interface for every generated file: a report renders stored files into ``{path: content}``.

A report is a class registered with ``@register_report("name")`` whose ``render(store)`` reads
the results store (and files stored beside it) and returns the files it generates, text or
bytes; it never re-runs an attack (studies that do live in ``bench.experiments`` and store
their outcome beside the results for a report to render). ``shieldbench report`` writes what
changed (atomically); ``shieldbench report --check`` writes nothing and exits 1 when a generated
file differs from its render or a report's ``orphans`` finds a page whose results are gone.
Reports whose output is not byte-stable across library versions (``checked = False``: the
matplotlib pictures) are drawn only when named (``--only pictures``) and never checked.

Adding a report is one new module in ``bench/reports/`` and its name in :data:`REPORTS`'s
built-ins below (``docs/design.md#worked-examples``).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from bench.core.io import atomic_write_bytes
from bench.core.registry import Registry
from bench.eval.schema import Result


README_PROTOCOL = "cifar10-standard-v2"
"""The protocol whose results the README's generated blocks (headline, claims) show."""


@dataclasses.dataclass(frozen=True)
class Store:
    """What reports read: the results store and the files generated beside it.

    Attributes:
        results: the results root, ``<results>/<protocol>/*.json`` (``leaderboards/results``).
        readme: the README whose generated blocks the ``readme`` report renders; a report of a
            results directory without one (a test's, a team's own) skips it.
    """

    results: Path
    readme: Path

    @classmethod
    def at(cls, results: Path | None = None, readme: Path | None = None) -> Store:
        """The store at ``results`` (default: the checkout's ``leaderboards/results``), whose
        README is ``readme`` or the one two levels above it."""
        from bench.eval.results import results_root

        root = Path(results) if results is not None else results_root()
        return cls(root, Path(readme) if readme is not None else root.parent.parent / "README.md")

    @property
    def pages(self) -> Path:
        """Where generated pages go: the results root's parent (``leaderboards/``)."""
        return self.results.parent

    def protocols(self) -> list[str]:
        """Protocols with stored results."""
        from bench.eval.results import protocols_with_results

        return protocols_with_results(self.results) if self.results.is_dir() else []

    def results_of(self, protocol: str) -> list[Result]:
        """The stored results of ``protocol`` (validated)."""
        from bench.eval.results import load_results

        return load_results(self.results, protocol)


class Report(ABC):
    """A generated file (or set of files) rendered from a :class:`Store`."""

    spec_name: ClassVar[str]
    checked: ClassVar[bool] = True
    """Compared by ``--check`` and rendered by default (``False``: only when named)."""

    @abstractmethod
    def render(self, store: Store) -> dict[Path, str | bytes]:
        """The files this report generates from ``store``, and their content."""

    def orphans(self, store: Store) -> dict[Path, str]:
        """Generated files of this report that should no longer exist, with what to do about them."""
        return {}


REPORTS: Registry[Report] = Registry("report", ("bench.reports.leaderboard", "bench.reports.readme",
                                                "bench.reports.shield_report", "bench.reports.plots"))
register_report = REPORTS.register


def markers(name: str) -> tuple[str, str]:
    """The markers around a generated block inside a hand-written file:
    ``("<!-- name:begin -->", "<!-- name:end -->")``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def selected(only: Sequence[str] = ()) -> list[Report]:
    """The reports named in ``only`` (every checked report when empty), built."""
    names = list(only) or [n for n in REPORTS.names() if REPORTS.get(n).checked]
    return [REPORTS.build(n) for n in names]


def _current(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _bytes(content: str | bytes) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What ``run`` found or did: files written (or, checking, stale) and orphans with hints."""

    changed: list[Path]
    orphans: dict[Path, str]


def run(store: Store, reports: Sequence[Report], check: bool = False) -> Outcome:
    """Renders ``reports``; writes the files whose content changed unless ``check``.

    Raises:
        ResultsError: a stored result is invalid (naming the file).
    """
    changed: list[Path] = []
    orphans: dict[Path, str] = {}
    for report in reports:
        for path, content in report.render(store).items():
            data = _bytes(content)
            if _current(path) == data:
                continue
            if not check:
                atomic_write_bytes(path, data)
            changed.append(path)
        orphans.update(report.orphans(store))
    return Outcome(changed, orphans)
