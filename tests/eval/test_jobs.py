"""Split protocols (defense x attack x shard): shards, partial files, merging, the CLI."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.eval.schema import ProtocolRef, read_json

from bench.eval.jobs import MergeError, Selection, Shard

SPLIT_PLANS = (("fgsm(eps=8)", ("gray-box", "transfer")), ("pgd(eps=8, steps=3)", ("adaptive",)),
               ("deepfool_l2(steps=10)", ("gray-box",)))


def _strip(result: Any) -> dict:
    """A result (typed, or as stored) without what legitimately differs between runs (timings, provenance)."""
    r = json.loads(json.dumps(result.to_json() if hasattr(result, "to_json") else result))
    r.pop("provenance")
    r.pop("cost")
    for a in r["attacks"]:
        a.pop("attack_s_per_image")
    return r


@pytest.mark.parametrize("total", [0, 1, 2, 7, 40])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_shards_partition_the_batches(total: int, count: int) -> None:
    blocks = [Shard(k, count).units(total) for k in range(1, count + 1)]
    assert [u for b in blocks for u in b] == list(range(total))
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def test_shard_and_selection_errors() -> None:
    assert Shard.parse(" 2/8 ") == Shard(2, 8) and str(Shard(2, 8)) == "2/8"
    for bad in ("0/4", "5/4", "2", "a/b", "1/0"):
        with pytest.raises(ValueError, match="shard"):
            Shard.parse(bad)
    with pytest.raises(ValueError, match="knowledge"):
        Selection(knowledge=("white-box",))
    assert Selection().tag == "" and len(Selection(("fgsm(eps=8)",)).tag) == 8


def test_split_runs_merge_to_the_unsplit_result(world: dict[str, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Randomized defense (R draws, EOT sub-batches), an empty shard and attack-split jobs."""
    from bench import build_defense, load_protocol
    from bench.eval.cache import AdversarialCache
    from bench.eval.jobs import job_commands, load_partials, partial_from_json, partial_to_json, save_partial
    from bench.eval.merge import merge_partials, result_from_partials
    from bench.eval.protocol import AttackPlan
    from bench.eval.runner import Runner

    p = dataclasses.replace(load_protocol("tiny"), attacks=tuple(AttackPlan(s, k, 20 if "deepfool" in s else None)
                                                                 for s, k in SPLIT_PLANS))
    defense = build_defense("tvm(iters=5)")
    whole = Runner(p).run(defense)
    # the jobs use a cache of their own: they craft everything again
    runner = Runner(p, cache=AdversarialCache(tmp_path / "job-cache"))
    partials = []
    for sel in (Selection(("fgsm(eps=8)", "deepfool_l2(steps=10)")), Selection(("pgd(eps=8, steps=3)",))):
        for k in (1, 2, 3):  # 2 batches of 20 images in 3 shards: shard 1 is empty
            partials.append(runner.records(defense, Shard(k, 3), sel))
    assert len(partials[0].clean.positions) == 0 and len(partials[0].attacks[0].positions) == 0
    assert len(job_commands(p, ["slq()", "identity()"], shards=3, split_attacks=True)) == 2 * 3 * 4
    for part in partials:
        save_partial(tmp_path / "partials", part)
    loaded = load_partials(tmp_path / "partials", p.name)
    assert len(loaded) == 6
    again = partial_from_json(json.loads(json.dumps(partial_to_json(partials[3]))), "x")
    assert np.array_equal(again.attacks[0].l2, partials[3].attacks[0].l2)
    merged = merge_partials(p, loaded)
    assert len(merged) == 1 and merged[0].provenance.jobs == 6
    assert _strip(merged[0]) == _strip(whole)
    assert _strip(result_from_partials(p, loaded + loaded[:2])) == _strip(whole)  # a job run twice counts once

    with pytest.raises(MergeError, match="shard is missing"):
        result_from_partials(p, loaded[:5])
    bad = dataclasses.replace(loaded[4], clean=dataclasses.replace(loaded[4].clean, correct=~loaded[4].clean.correct))
    with pytest.raises(MergeError, match="disagree"):
        result_from_partials(p, [*loaded, bad])
    other = dataclasses.replace(loaded[5], header=dataclasses.replace(loaded[5].header, seed=7), source="other.json")
    with pytest.raises(MergeError, match="other.json.*differ in 'seed'"):
        result_from_partials(p, [*loaded[:5], other])
    with pytest.raises(MergeError, match="another version of protocol"):
        result_from_partials(dataclasses.replace(p, draws=3), loaded)  # a scoring field: another identity
    edited = result_from_partials(dataclasses.replace(p, sha256="0" * 64), loaded)  # other bytes, same identity
    assert edited.protocol.identity == whole.protocol.identity
    assert _strip(edited.to_json() | {"protocol": None}) == _strip(whole.to_json() | {"protocol": None})
    broken = tmp_path / "partials" / p.name / "broken.json"
    broken.write_text('{"kind": "shieldbench-partial", "schema": 1}')
    with pytest.raises(MergeError, match="broken.json: not a valid partial"):
        load_partials(tmp_path / "partials", p.name)


def test_cli_jobs_run_and_merge(world: dict[str, Path], tmp_path: Path, capsys) -> None:
    from bench.cli.main import main

    results, partials = tmp_path / "lb" / "results", tmp_path / "partials"
    assert main(["jobs", "--protocol", "tiny", "--defense", "identity()", "--shards", "2",
                 "--partials", str(partials)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "--shard 2/2" in lines[1]
    for line in lines:
        assert main(shlex.split(line)[1:]) == 0
    assert not results.exists()  # a job writes partials only
    assert main(["merge", "--protocol", "tiny", "--partials", str(partials), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "from 2 partial(s)" in out and (tmp_path / "lb" / "tiny.md").is_file()
    merged = json.loads(next((results / "tiny").glob("identity-*.json")).read_text())
    assert merged["provenance"]["command"] == "shieldbench run --protocol tiny --defense 'identity()'"
    assert main(["run", "--protocol", "tiny", "--defense", "identity()", "--results", str(tmp_path / "whole")]) == 0
    whole = json.loads(next((tmp_path / "whole" / "tiny").glob("identity-*.json")).read_text())
    assert _strip(merged) == _strip(whole)
    assert main(["merge", "--protocol", "tiny", "--partials", str(tmp_path / "none")]) != 0
    assert "no partial results" in capsys.readouterr().err
    assert main(["run", "--protocol", "tiny", "--defense", "identity()", "--attack", "pgd(eps=1, steps=1)",
                 "--partials", str(partials)]) != 0
    assert "has no attack 'pgd(eps=1, steps=1)'" in capsys.readouterr().err


def test_partials_merge_across_a_comment_edit_of_the_protocol_but_not_an_attack_edit(
        world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.bench_world import small_protocol

    from bench import build_defense, load_protocol
    from bench.eval.jobs import load_partials, save_partial
    from bench.eval.merge import result_from_partials
    from bench.eval.protocol import parse_protocol
    from bench.eval.runner import Runner

    name = small_protocol(monkeypatch, world, tmp_path / "protocols", "tiny-edit")
    path = tmp_path / "protocols" / f"{name}.toml"
    p = load_protocol(name)
    save_partial(tmp_path / "partials", Runner(p).records(build_defense("identity()"), Shard(1, 1), Selection()))
    old = {k: v for k, v in p.header().items() if k != "identity"}  # as written before identities
    partials = load_partials(tmp_path / "partials", name)
    before_ids = [dataclasses.replace(partials[0], header=dataclasses.replace(
        partials[0].header, protocol=read_json(ProtocolRef, old, "a partial from before identities")))]
    whole = result_from_partials(p, partials)

    path.write_text("# a comment, a new description and a longer defense list\n" + path.read_text()
                    .replace('description = "test protocol"', 'description = "edited"')
                    .replace('defenses = ["identity()"', 'defenses = ["identity()", "median(size=3)"'))
    edited = parse_protocol(path)
    assert edited.sha256 != p.sha256 and edited.identity == p.identity
    again = result_from_partials(edited, partials)
    assert again.protocol.to_json() == edited.header() and whole.protocol.to_json() == p.header()  # the file merged under
    assert _strip(again.to_json() | {"protocol": None}) == _strip(whole.to_json() | {"protocol": None})
    with pytest.raises(MergeError, match=f"another version of protocol {name} \\(sha256"):
        result_from_partials(edited, before_ids)  # no identity: only the same bytes match (migrate it first)

    path.write_text(path.read_text().replace('spec = "fgsm(eps=8)"', 'spec = "fgsm(eps=4)"'))
    with pytest.raises(MergeError, match=f"another version of protocol {name} \\(identity {p.identity[:12]}"):
        result_from_partials(parse_protocol(path), partials)


def test_every_committed_partial_reads_typed_and_writes_back_the_same_json() -> None:
    """The job partials in ``leaderboards/partials`` survive ``partial_from_json`` / ``partial_to_json``
    unchanged (typed header, attack infos and skipped levels; per-image records exactly)."""
    from bench.eval.jobs import partial_from_json, partial_to_json
    from bench.eval.results import results_root

    files = sorted((results_root().parent / "partials").rglob("*.json"))
    for f in files:
        d = json.loads(f.read_text())
        assert partial_to_json(partial_from_json(d, str(f))) == d, f
    assert files
