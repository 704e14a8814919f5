"""The report interface (bench/reports/report.py): render, write what changed, check, orphans."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli.main import main as cli
from bench.eval.results import save_result
from bench.reports.report import REPORTS, Report, Store, register_report, run, selected
from tests.reports.test_leaderboard import attack, make_result


@register_report("test_counts")
class Counts(Report):
    """A report of one line per protocol: how many results it has (text), and a byte file. Not
    checked by default, so that the committed-files check elsewhere in the suite never runs it."""

    checked = False

    def render(self, store: Store) -> dict[Path, str | bytes]:
        text = "".join(f"{p}: {len(store.results_of(p))}\n" for p in store.protocols())
        return {store.pages / "counts.txt": text, store.pages / "counts.bin": text.encode()[::-1]}

    def orphans(self, store: Store) -> dict[Path, str]:
        stray = store.pages / "stray.txt"
        return {stray: "remove it"} if stray.exists() else {}


def test_a_new_report_renders_writes_only_what_changed_and_checks(tmp_path: Path) -> None:
    results = tmp_path / "leaderboards" / "results"
    save_result(results, make_result("a()", 0.9, [attack("gray-box", "fgsm(eps=8)", 0.5)], protocol="p1"))
    store = Store.at(results)
    assert store.pages == tmp_path / "leaderboards" and store.readme == tmp_path / "README.md"
    assert run(store, [Counts()], check=True).changed == [store.pages / "counts.txt", store.pages / "counts.bin"]
    assert not (store.pages / "counts.txt").exists()  # checking writes nothing
    assert len(run(store, [Counts()]).changed) == 2 and (store.pages / "counts.txt").read_text() == "p1: 1\n"
    assert run(store, [Counts()]).changed == [] and run(store, [Counts()], check=True).changed == []
    save_result(results, make_result("b()", 0.8, [attack("gray-box", "fgsm(eps=8)", 0.4)], protocol="p1"))
    assert run(store, [Counts()], check=True).changed == [store.pages / "counts.txt", store.pages / "counts.bin"]
    (store.pages / "stray.txt").write_text("x")
    assert run(store, [Counts()], check=True).orphans == {store.pages / "stray.txt": "remove it"}


def test_the_cli_runs_every_checked_report_and_names_the_stale_file(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert {"leaderboard", "readme", "shield", "pictures", "test_counts"} <= set(REPORTS.names())
    assert {r.spec_name for r in selected()} == {"leaderboard", "readme", "shield"}  # the others only when named
    results = tmp_path / "leaderboards" / "results"
    save_result(results, make_result("a()", 0.9, [attack("gray-box", "fgsm(eps=8)", 0.5)], protocol="p1"))
    assert cli(["report", "--results", str(results), "--check"]) == 1
    out = capsys.readouterr().out
    assert "p1.md" in out and "counts.txt" not in out and "README" not in out  # no README beside this store
    args = ["report", "--results", str(results), "--only", "leaderboard", "test_counts"]
    assert cli([*args, "--check"]) == 1 and "counts.txt" in capsys.readouterr().out
    assert cli(args) == 0 and (tmp_path / "leaderboards" / "p1.md").is_file()
    assert cli([*args, "--check"]) == 0 and "up to date" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli([*args, "--only", "nonsense"])  # argparse names the choices
