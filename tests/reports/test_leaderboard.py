"""Results store and leaderboard rendering, on synthetic results dicts (no JAX work)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

import bench.core.io
from bench.eval.schema import Result
from bench.reports.leaderboard import (Change, Headline, compare, format_changes, headline, leaderboard_path, render,
                                       write_leaderboards)
from bench.eval.results import (
    SCHEMA_VERSION,
    ResultsError,
    load_result,
    load_results,
    protocols_with_results,
    result_filename,
    result_path,
    results_root,
    save_result,
    validate_result,
)

PROTOCOL = "cifar10-smoke"


def stats(mean: float, std: float = 0.0, draws: int = 1) -> dict[str, Any]:
    return {"mean": mean, "std": std, "draws": [mean] * draws}


def attack(knowledge: str, spec: str, acc: float, *, eps: float | None = 8.0, std: float = 0.0, draws: int = 1,
           eliminated: float | None = None, l2: float = 1.2, thr: float | None = None,
           source: str = "resnet20") -> dict[str, Any]:
    """A synthetic attack entry; the family name is the spec's name."""
    return {"knowledge": knowledge, "attack": spec, "name": spec.split("(")[0],
            "norm": "linf" if eps is not None else "l2", "eps": eps, "source": source, "eot": 1,
            "robust_accuracy": stats(acc, std, draws), "attack_success": 0.9, "eliminated": eliminated,
            "perturbation": {"linf": 8.0, "l2": l2, "rms": l2 / 55.4},
            "l2_threshold": thr if eps is None else None, "attack_s_per_image": 0.1}


def make_result(spec: str, clean: float = 0.9, attacks: list[dict[str, Any]] | None = None, *,
                randomized: bool = False, draws: int = 1, clean_std: float = 0.0, protocol: str = PROTOCOL,
                version: int = 1, ms: float = 0.3) -> dict[str, Any]:
    """A synthetic result that passes validation."""
    return {
        "schema": SCHEMA_VERSION,
        "protocol": {"name": protocol, "version": version, "sha256": f"{version:064x}"},
        "defense": {"spec": spec, "randomized": randomized, "members": ["resnet20"], "vote": "mean_logits"},
        "data": {"dataset": "cifar10", "split": "test", "n": 200, "indices_sha256": "ab" * 32,
                 "source_sha256": "cd" * 32},
        "seed": 0,
        "draws": draws,
        "clean_accuracy": stats(clean, clean_std, draws),
        "attacks": attacks if attacks is not None else [attack("gray-box", "pgd(eps=8, steps=20)", 0.1)],
        "cost": {"defense_ms_per_image": ms, "batch": 128},
        "provenance": {"versions": {"jax": "0.4"}, "models": {"resnet20": "ef" * 32}, "wall_time_s": 12.3,
                       "created": "2026-11-21T18:00:00Z",
                       "command": f"shieldbench run --protocol {protocol} --defense '{spec}'"},
    }


def typed(results: dict[str, Any] | list[dict[str, Any]]) -> Any:
    """A synthetic result (or a list of them) as the typed ``Result`` readers take."""
    if isinstance(results, list):
        return [Result.from_json(r, "a test result") for r in results]
    return Result.from_json(results, "a test result")


def table_rows(text: str, first_header: str) -> list[list[str]]:
    """Cells of the markdown table whose header row starts with ``first_header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"\|\s*{re.escape(first_header)}\s*\|", line))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


# ---------------------------------------------------------------------------------- results store
def test_save_load_round_trip(tmp_path: Path) -> None:
    result = make_result("jpeg(quality=75)")
    path = save_result(tmp_path, result)
    assert path == tmp_path / PROTOCOL / result_filename("jpeg(quality=75)")
    assert path == result_path(tmp_path, PROTOCOL, "jpeg(quality=75)")
    text = path.read_text()
    assert text == json.dumps(result, indent=2, sort_keys=True) + "\n"
    assert load_result(path) == typed(result) and load_result(path).to_json() == result
    assert load_results(tmp_path, PROTOCOL) == [typed(result)]
    assert protocols_with_results(tmp_path) == [PROTOCOL]


def test_results_root_default() -> None:
    assert results_root() == Path(bench.core.io.__file__).resolve().parents[2] / "leaderboards" / "results"


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_result(tmp_path, make_result("jpeg(quality=75)", clean=0.9))
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(bench.core.io.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_result(tmp_path, make_result("jpeg(quality=75)", clean=0.5))
    with pytest.raises(OSError):
        save_result(tmp_path, make_result("identity()"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_save_invalid_writes_nothing(tmp_path: Path) -> None:
    bad = make_result("jpeg(quality=75)")
    del bad["attacks"][0]["robust_accuracy"]
    with pytest.raises(ResultsError, match=r"attacks\[0\]\.robust_accuracy"):
        save_result(tmp_path, bad)
    assert not (tmp_path / PROTOCOL).exists()


@pytest.mark.parametrize("mutate, key", [
    (lambda r: r["attacks"][2].pop("robust_accuracy"), "missing key 'attacks[2].robust_accuracy'"),
    (lambda r: r["attacks"][1].update(knowledge="white-box"), "'attacks[1].knowledge' must be one of"),
    (lambda r: r.update(schema=2), "'schema' is 2"),
    (lambda r: r["defense"].pop("spec"), "missing key 'defense.spec'"),
    (lambda r: r["clean_accuracy"].update(mean=1.5), "'clean_accuracy.mean' must be a fraction"),
    (lambda r: r["clean_accuracy"].update(draws=[0.9, 0.9]), "'clean_accuracy.draws' has 2 values"),
    (lambda r: r["attacks"][0].update(eps=None), "'attacks[0].l2_threshold' must be set"),
    (lambda r: r["attacks"].append(copy.deepcopy(r["attacks"][0])), "'attacks[3].attack' repeats gray-box"),
    (lambda r: r["protocol"].update(name="../x"), "'protocol.name' must be a name"),
    (lambda r: r["attacks"][0].update(norm="l1"), "'attacks[0].norm' must be one of linf, l2"),
    (lambda r: r["attacks"][0].update(stages=[{"attack": "pgd(eps=8)", "surrogate": None, "check": False, "ran": 5,
                                               "broke": -1, "robust_after": 0.5, "seconds": 1.0}]),
     "'attacks[0].stages[0].broke' must be a count, got -1"),
    (lambda r: r.update(skipped=[{"knowledge": "transfer"}]), "missing key 'skipped[0].reason'"),
    (lambda r: r["provenance"].update(jobs=0), "'provenance.jobs' must be a positive integer"),
    (lambda r: r["provenance"].update(model_files={"path": "m.py"}), "'provenance.model_files' must be a list"),
    (lambda r: r.update(base_clean_accuracy=1.2), "'base_clean_accuracy' must be a fraction"),
])
def test_validation_errors_name_file_and_key(tmp_path: Path, mutate: Any, key: str) -> None:
    result = make_result("jpeg(quality=75)", attacks=[
        attack("gray-box", "pgd(eps=8, steps=20)", 0.1), attack("transfer", "pgd(eps=8, steps=20)", 0.3),
        attack("gray-box", "fgsm(eps=8)", 0.4)])
    validate_result(result, "ok")
    mutate(result)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(result))
    with pytest.raises(ResultsError) as info:
        load_result(path)
    assert str(info.value).startswith(f"{path}: ")
    assert key in str(info.value)


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"schema": 1,')
    with pytest.raises(ResultsError, match=rf"^{re.escape(str(path))}: not valid JSON"):
        load_result(path)
    with pytest.raises(ResultsError, match="cannot read"):
        load_result(tmp_path / "absent.json")


def test_result_filename_deterministic_and_distinct() -> None:
    name = result_filename("jpeg(quality=75)")
    assert name == result_filename("jpeg(quality=75)")
    assert name == "jpeg-quality-75-" + hashlib.sha256(b"jpeg(quality=75)").hexdigest()[:8] + ".json"
    specs = ["jpeg(quality=75)", "jpeg(quality=76)", "a(x='b c')", "a(x='b-c')", "JPEG(quality=75)",
             "shield(qualities=(20, 40, 60, 80))", "f(s='../../etc/passwd')", "()"]
    names = [result_filename(s) for s in specs]
    assert len(set(names)) == len(specs)
    for n in names:
        assert re.fullmatch(r"[a-z0-9-]+-[0-9a-f]{8}\.json", n), n
        assert not n.startswith("-")


def test_load_results_sorted_missing_and_conflicts(tmp_path: Path) -> None:
    assert load_results(tmp_path, PROTOCOL) == []
    assert protocols_with_results(tmp_path / "nowhere") == []
    for spec in ("slq()", "fd()", "jpeg(quality=75)"):
        save_result(tmp_path, make_result(spec))
    save_result(tmp_path, make_result("fd()", protocol="cifar10-standard"))
    (tmp_path / "empty").mkdir()
    assert [r.spec for r in load_results(tmp_path, PROTOCOL)] == ["fd()", "jpeg(quality=75)", "slq()"]
    assert protocols_with_results(tmp_path) == ["cifar10-smoke", "cifar10-standard"]
    # a file in the wrong protocol's directory is refused
    (tmp_path / PROTOCOL / "moved.json").write_text(json.dumps(make_result("x()", protocol="other")))
    with pytest.raises(ResultsError, match="moved.json: result of protocol 'other'"):
        load_results(tmp_path, PROTOCOL)


# -------------------------------------------------------------------------------------- headline
def test_headline_is_min_over_linf_eps8_attacks() -> None:
    result = make_result("jpeg(quality=75)", clean=0.85, ms=0.25, attacks=[
        attack("gray-box", "fgsm(eps=8)", 0.40, eliminated=0.6),
        attack("gray-box", "pgd(eps=8, steps=20)", 0.10, eliminated=0.7),
        attack("gray-box", "pgd(eps=4, steps=20)", 0.05, eps=4.0, eliminated=0.9),
        attack("gray-box", "cw_l2()", 0.0, eps=None, thr=0.5, eliminated=0.95),
        attack("adaptive", "pgd(eps=8, steps=20)", 0.02, source="jpeg(quality=75)"),
        attack("adaptive", "pgd(eps=4, steps=20)", 0.01, eps=4.0, source="jpeg(quality=75)"),
    ])
    assert headline(typed(result)) == Headline(0.85, {"gray-box": 0.10, "transfer": None, "adaptive": 0.02}, 0.7, 0.25)
    only_eps4 = typed(make_result("x()", attacks=[attack("gray-box", "pgd(eps=4, steps=20)", 0.3, eps=4.0)]))
    assert headline(only_eps4).gray_box is None
    assert headline(only_eps4).eliminated is None


# ---------------------------------------------------------------------------------------- render
def ranked_results() -> list[dict[str, Any]]:
    def res(spec: str, gray: float, adaptive: float | None, **kw: Any) -> dict[str, Any]:
        entries = [attack("gray-box", "pgd(eps=8, steps=20)", gray, eliminated=0.5)]
        if adaptive is not None:
            entries.append(attack("adaptive", "pgd(eps=8, steps=20)", adaptive, source=spec))
        return make_result(spec, attacks=entries, **kw)

    return [res("a()", 0.5, 0.3), res("b()", 0.6, 0.3), res("c()", 0.9, None), res("d()", 0.2, 0.5),
            res("e()", 0.5, 0.3)]


def test_render_deterministic_and_sorted() -> None:
    results = typed(ranked_results())
    text = render(PROTOCOL, results)
    assert text == render(PROTOCOL, list(reversed(results)))
    assert text.splitlines()[0] == ("<!-- generated by `shieldbench leaderboard` from "
                                    "leaderboards/results/cifar10-smoke/*.json; do not edit by hand -->")
    assert text.endswith("\n") and "2026-11-21" not in text and "12.3" not in text
    rows = table_rows(text, "Rank")
    assert [(r[0], r[1]) for r in rows] == [("1", "`d()`"), ("2", "`b()`"), ("3", "`a()`"), ("3", "`e()`"),
                                            ("5", "`c()`")]
    assert rows[0] == ["1", "`d()`", "90.0%", "20.0%", "—", "50.0%", "50.0%", "0.30", "A>G",
                       "`shieldbench run --protocol cifar10-smoke --defense 'd()'`"]
    assert rows[1][8] == "—" and "`A>G`: adaptive robust accuracy exceeds gray-box" in text
    assert "Protocol `cifar10-smoke` v1" in text and "cifar10/test, n = 200 images" in text
    assert "Warning" not in text
    assert "*minimum*" in text  # the column notes are there
    detail = table_rows(text, "Defense")
    assert [r[0] for r in detail] == ["`d()`", "`b()`", "`a()`", "`e()`", "`c()`"]


def test_render_randomized_and_minimum_norm_cells() -> None:
    rnd = make_result("rand()", clean=0.845, clean_std=0.012, randomized=True, draws=5, attacks=[
        attack("gray-box", "pgd(eps=8, steps=20)", 0.301, std=0.02, draws=5, eliminated=0.4),
        attack("gray-box", "fgsm(eps=8)", 0.5, std=0.01, draws=5),
        attack("gray-box", "deepfool_l2()", 0.125, eps=None, thr=0.5, l2=0.314, draws=5),
    ])
    det = make_result("det()", clean=0.9, attacks=[
        attack("gray-box", "pgd(eps=8, steps=20)", 0.1), attack("gray-box", "pgd(eps=2, steps=20)", 0.6, eps=2.0)])
    text = render(PROTOCOL, typed([det, rnd]))
    head = table_rows(text, "Rank")
    assert head[0][1:4] == ["`rand()`", "84.5 ± 1.2%", "30.1 ± 2.0%"]
    assert head[1][1:4] == ["`det()`", "90.0%", "10.0%"]
    assert "R = 5 independent draws" in text
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| Defense"))
    columns = [c.strip() for c in header.split("|")[1:-1]]
    assert columns == ["Defense", "deepfool_l2()", "fgsm(eps=8)", "pgd(eps=2, steps=20)", "pgd(eps=8, steps=20)"]
    detail = table_rows(text, "Defense")
    assert detail[0] == ["`rand()`", "12.5 ± 0.0% @L2<=0.5 (median L2 0.31)", "50.0 ± 1.0%", "—", "30.1 ± 2.0%"]
    assert detail[1] == ["`det()`", "—", "—", "60.0%", "10.0%"]


def test_render_empty_and_protocol_mismatch() -> None:
    empty = render(PROTOCOL, [])
    assert empty.splitlines()[0].startswith("<!-- generated by `shieldbench leaderboard`")
    assert "No results yet" in empty and "| Rank" not in empty and empty.endswith("\n")
    mixed = render(PROTOCOL, typed([make_result("a()"), make_result("b()", version=2)]))
    assert "> **Warning:** the results disagree on the protocol" in mixed
    assert "v1 (sha256 000000000000): 1 file" in mixed and "v2 (sha256 000000000000): 1 file" in mixed


def test_results_agree_on_the_protocol_by_identity_not_file_bytes() -> None:
    a, b = make_result("a()"), make_result("b()")
    a["protocol"].update(sha256="aa" * 32, identity="11" * 32)  # b: the same protocol after a comment edit
    b["protocol"].update(sha256="bb" * 32, identity="11" * 32)
    same = render(PROTOCOL, typed([a, b, json.loads(json.dumps(b)) | {"defense": {**b["defense"], "spec": "c()"}}]))
    assert "Warning" not in same and "(sha256 bbbbbbbbbbbb)" in same  # the file most rows were scored under
    b["protocol"]["identity"] = "22" * 32  # an attack edit
    mixed = render(PROTOCOL, typed([a, b]))
    assert "v1 (identity 111111111111): 1 file" in mixed and "v1 (identity 222222222222): 1 file" in mixed


def test_skipped_levels_are_named_not_silent() -> None:
    a, b = make_result("a()"), make_result("b()")
    assert "Incomplete" not in render(PROTOCOL, typed([a, b]))
    a["skipped"] = [{"knowledge": "transfer", "reason": "unknown zoo model 'src'"}]
    assert ("> **Incomplete:** the transfer attacks were skipped for `a()` (unknown zoo model 'src'); "
            "re-run those rows.") in render(PROTOCOL, typed([a, b]))
    b["skipped"] = list(a["skipped"])
    assert "skipped for every row (unknown zoo model 'src')" in render(PROTOCOL, typed([a, b]))


def test_pipe_in_command_is_escaped() -> None:
    r = make_result("a()")
    r["provenance"]["command"] = "shieldbench run | tee log"
    row = table_rows(render(PROTOCOL, typed([r])), "Rank")[0]
    assert row[-1] == "`shieldbench run \\| tee log`"


# ------------------------------------------------------------------------------ write / check
def test_write_leaderboards_check_mode(tmp_path: Path) -> None:
    root, out = tmp_path / "results", tmp_path / "boards"
    save_result(root, make_result("a()"))
    save_result(root, make_result("b()", protocol="cifar10-standard"))
    smoke, standard = leaderboard_path(PROTOCOL, out), leaderboard_path("cifar10-standard", out)
    assert smoke == out / "cifar10-smoke.md"
    out.mkdir()
    standard.write_text("stale\n")
    assert write_leaderboards(root, out, check=True) == [smoke, standard]
    assert not smoke.exists() and standard.read_text() == "stale\n"
    assert write_leaderboards(root, out) == [smoke, standard]
    assert smoke.read_text() == render(PROTOCOL, load_results(root, PROTOCOL))
    assert write_leaderboards(root, out, check=True) == []
    assert write_leaderboards(root, out) == []
    save_result(root, make_result("c()"))  # new result -> page stale
    assert write_leaderboards(root, out, check=True) == [smoke]
    assert "`c()`" not in smoke.read_text()
    assert sorted(p.name for p in out.iterdir()) == ["cifar10-smoke.md", "cifar10-standard.md"]


# ------------------------------------------------------------------------------------- compare
def test_compare_reports_moves_and_missing() -> None:
    pgd, fgsm, cw = "pgd(eps=8, steps=20)", "fgsm(eps=8)", "cw_l2()"
    stored = typed([
        make_result("a()", clean=0.90, attacks=[attack("gray-box", pgd, 0.10), attack("gray-box", fgsm, 0.40)]),
        make_result("b()", clean=0.80, attacks=[attack("gray-box", pgd, 0.20)]),
        make_result("gone()", clean=0.5),
    ])
    fresh = typed([
        make_result("a()", clean=0.93, attacks=[attack("gray-box", pgd, 0.15)]),  # fgsm entry missing
        make_result("b()", clean=0.80, attacks=[attack("gray-box", pgd, 0.205),
                                                attack("transfer", cw, 0.3, eps=None, thr=0.5)]),
        make_result("new()", clean=0.7, attacks=[]),
    ])
    changes = compare(stored, fresh, tolerance=0.05)
    assert changes == [
        Change("a()", f"gray-box {fgsm}", 0.40, None),
        Change("b()", f"transfer {cw}", None, 0.3),
        Change("new()", "clean", None, 0.7),
    ]
    strict = compare(stored, fresh, tolerance=0.01)
    assert [(c.defense, c.metric) for c in strict] == [
        ("a()", "clean"), ("a()", f"gray-box {pgd}"), ("a()", f"gray-box {fgsm}"),
        ("b()", f"transfer {cw}"), ("new()", "clean")]
    assert strict[0].delta == pytest.approx(0.03)
    assert strict[2].delta is None
    assert compare(stored, stored, tolerance=0.0) == []
    table = format_changes(strict)
    assert table.splitlines()[0].split("|")[1].strip() == "defense"
    assert "+3.00 pp" in table and "+5.00 pp" in table and "missing" in table
    assert format_changes([]) == "no changes"
    with pytest.raises(ValueError):
        compare(stored, fresh, tolerance=-0.1)


def test_compare_does_not_report_changes_exactly_at_tolerance() -> None:
    """0.15 - 0.10 is 0.05000000000000002 in floating point; it is within a 0.05 tolerance."""
    stored = typed([make_result("a()", attacks=[attack("gray-box", "pgd(eps=8)", 0.10)])])
    fresh = typed([make_result("a()", attacks=[attack("gray-box", "pgd(eps=8)", 0.15)])])
    assert compare(stored, fresh, tolerance=0.05) == []
    assert len(compare(stored, fresh, tolerance=0.049)) == 1


def test_changes_survive_os_level_roundtrip(tmp_path: Path) -> None:
    """compare works on what the store loads back (the check command's inputs)."""
    save_result(tmp_path, make_result("a()", clean=0.9))
    fresh = typed(make_result("a()", clean=0.7))
    changes = compare(load_results(tmp_path, PROTOCOL), [fresh], tolerance=0.1)
    assert changes == [Change("a()", "clean", 0.9, 0.7)]
    assert changes[0].delta == pytest.approx(-0.2)
    assert os.path.exists(result_path(tmp_path, PROTOCOL, "a()"))


@pytest.mark.parametrize("arg", ["fd(preset='code')", "plain", "two words", "it's $HOME", 'say "hi"', "a'b`c", "x!'y",
                                 "back\\slash'", ""])
def test_shell_join_round_trips_and_reads_well(arg: str) -> None:
    import shlex

    from bench.core.io import shell_join
    from bench.reports.leaderboard import _display_command

    line = shell_join(["shieldbench", "run", "--defense", arg])
    assert shlex.split(line) == ["shieldbench", "run", "--defense", arg]
    assert _display_command(shlex.join(["shieldbench", "run", "--defense", arg])) == line
    if arg == "fd(preset='code')":
        assert line == "shieldbench run --defense \"fd(preset='code')\""


def test_every_committed_result_reads_typed_and_writes_back_the_same_json() -> None:
    """``Result.from_json(d).to_json() == d`` for every stored file: nothing is lost or added
    (unknown keys are kept), so re-saving a loaded result changes no byte."""
    checked = 0
    for f in sorted(results_root().glob("*/*.json")):  # (results_root() also holds experiment outputs)
        d = json.loads(f.read_text())
        r = load_result(f)
        assert r.to_json() == d, f
        assert json.dumps(r.to_json(), indent=2, sort_keys=True) + "\n" == f.read_text(), f
        checked += 1
    assert checked > 0


def test_unknown_keys_are_kept_and_optional_keys_stay_absent() -> None:
    d = make_result("a()")
    d["attacks"][0]["future_metric"] = {"x": 1}
    d["provenance"]["host"] = "node-7"
    d["comment"] = "kept"
    r = typed(d)
    assert r.to_json() == d and r.base_clean_accuracy is None and r.attacks[0].n is None
    assert "clean_correct" not in r.to_json() and "n" not in r.to_json()["attacks"][0]


def test_committed_results_match_their_protocol_files() -> None:
    """Every committed result and job partial carries the identity of the protocol file now in the
    checkout (``bench.eval.protocol``): comment edits keep it; a scoring edit means re-running the rows."""
    from bench.eval.protocol import PROTOCOL_DIR, parse_protocol, same_protocol

    checked = 0
    for root in (results_root(), results_root().parent / "partials"):
        for name in sorted(d.name for d in root.iterdir() if d.is_dir()) if root.is_dir() else []:
            path = PROTOCOL_DIR / f"{name}.toml"
            assert path.is_file(), f"{root / name}: results for a protocol with no file in {PROTOCOL_DIR}"
            protocol = parse_protocol(path)
            for f in sorted((root / name).rglob("*.json")):
                header = json.loads(f.read_text())["protocol"]
                assert "identity" in header, f"{f}: no protocol identity (scripts/migrate_protocol_identity.py)"
                assert same_protocol(header, protocol), (
                    f"{f}: made under protocol identity {header['identity'][:12]}, the file {path} is now "
                    f"{protocol.identity[:12]}; restore the file or re-run the rows")
                checked += 1
    assert checked > 0


def test_a_board_still_being_scored_names_the_defenses_without_a_result() -> None:
    one = render(PROTOCOL, typed([make_result("identity()")]))
    assert ("> **Partial board:** 1 of the protocol's 2 defenses have no result yet (`jpeg(quality=75)`)."
            in one)
    # a result of a defense the protocol does not list (a submission) does not change the protocol's count
    extra = render(PROTOCOL, typed([make_result("identity()"), make_result("a()")]))
    assert "1 of the protocol's 2 defenses have no result yet (`jpeg(quality=75)`)" in extra
    both = render(PROTOCOL, typed([make_result("identity()"), make_result("jpeg(quality=75)")]))
    assert "Partial board" not in both
    # a protocol this checkout does not know (results from elsewhere): no list to compare with
    assert "Partial board" not in render("elsewhere", typed([make_result("identity()", protocol="elsewhere")]))
    # results name a defense by its canonical spec, the protocol by what its author wrote
    v2 = "cifar10-standard-v2"
    text = render(v2, typed([make_result("tvm(drop=0.5, weight=0.03)", protocol=v2)]))
    assert "22 of the protocol's 23 defenses" in text and "`tvm()`" not in text
