"""Protocol files and defenses: parsing, errors, shipped protocols, votes and views."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from bench.core.defense import Defense, build_defense, combine
from bench.eval.protocol import Protocol, ProtocolError, list_protocols, load_protocol, parse_protocol
from bench.core.registry import SpecError
from bench.core.transform import build_transform

GOOD = """
name = "{name}"
version = 1
dataset = "cifar10"
split = "test"
n = 10
seed = 0
base = "resnet20"
source = "resnet32"
draws = 2
eot = 2
batch_size = 10
l2_threshold = 0.5
defenses = ["identity()"]

[[attack]]
spec = "{attack}"
knowledge = {knowledge}
"""


def write(tmp_path: Path, name="p", attack="fgsm(eps=8)", knowledge='["gray-box"]', extra="") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(GOOD.format(name=name, attack=attack, knowledge=knowledge) + extra)
    return path


def test_shipped_protocols_parse() -> None:
    names = list_protocols()
    assert {"cifar10-smoke", "cifar10-standard"} <= set(names)
    for n in names:
        p = load_protocol(n)
        assert p.name == n and p.attacks and p.defenses
        for d in p.defenses:
            build_defense(d)


@pytest.mark.parametrize(("attack", "knowledge", "message"), [
    ("fgsm(eps=8)", '["grey-box"]', "knowledge must be"),
    ("fgsm()", '["gray-box"]', "eps"),
    ("fsgm(eps=8)", '["gray-box"]', "did you mean fgsm"),
])
def test_bad_attacks_name_the_file(tmp_path: Path, attack: str, knowledge: str, message: str) -> None:
    path = write(tmp_path, attack=attack, knowledge=knowledge)
    with pytest.raises(ProtocolError, match=message) as e:
        parse_protocol(path)
    assert str(path) in str(e.value)


def test_malformed_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = ")
    with pytest.raises(ProtocolError, match="not valid TOML"):
        parse_protocol(bad)
    with pytest.raises(ProtocolError, match="does not match the file name"):
        parse_protocol(write(tmp_path, name="p").rename(tmp_path / "q.toml"))
    p = write(tmp_path, name="r")
    p.write_text(p.read_text().replace("n = 10\n", "n = 'ten'\n"))
    with pytest.raises(ProtocolError, match="'n' must be int"):
        parse_protocol(p)
    with pytest.raises(ProtocolError, match="did you mean cifar10-smoke"):
        load_protocol("cifar10-smoek")
    for old, new, message in (("seed = 0\n", "seed = 0\nsed = 1\n", "unknown key"),
                              ("l2_threshold = 0.5", "l2_threshold = 0", "l2_threshold must be a finite number > 0"),
                              ("l2_threshold = 0.5", "l2_threshold = nan", "l2_threshold must be a finite number > 0"),
                              ("l2_threshold = 0.5", "l2_threshold = inf", "l2_threshold must be a finite number > 0"),
                              ("seed = 0\n", "seed = -1\n", r"s\.toml: seed must be an integer in 0\.\.2\*\*63-1, got -1"),
                              ('["identity()"]', '["identity()", 1]', r"s\.toml: defenses\[1\] must be a defense spec string"),
                              ('["identity()"]', '["jpeg(quality=1e400)"]', r"s\.toml: defenses\[0\]: .*not a finite number"),
                              ('["identity()"]', '["identiy()"]', "did you mean identity"),
                              ('knowledge = ["gray-box"]', 'knowledge = ["gray-box"]\nm = 3', "unknown key"),
                              ('knowledge = ["gray-box"]', 'knowledge = ["gray-box"]\neot = 4', "on an adaptive attack"),
                              ('knowledge = ["gray-box"]', 'knowledge = ["adaptive"]\neot = 0', "eot must be")):
        p = write(tmp_path, name="s")
        p.write_text(p.read_text().replace(old, new))
        with pytest.raises(ProtocolError, match=message):
            parse_protocol(p)


def test_an_attack_may_set_its_own_eot(tmp_path: Path) -> None:
    p = parse_protocol(write(tmp_path, knowledge='["adaptive"]', extra='\n[[attack]]\nspec = "pgd(eps=8, steps=4)"\n'
                                                                     'knowledge = ["adaptive"]\neot = 4\n'))
    assert [a.eot for a in p.attacks] == [None, 4] and p.eot == 2
    sanity = [a for a in load_protocol("cifar10-standard").attacks if a.spec == "pgd(eps=8, steps=100)"]
    assert sanity[0].eot == 2 * load_protocol("cifar10-standard").eot  # doubles K as well as the steps


def test_defense_specs_and_views() -> None:
    assert repr(build_defense("jpeg(quality=75)")) == "jpeg(quality=75)"
    d = build_defense("ensemble(transforms=('jpeg(quality=20)', 'jpeg(quality=80)'), members=('a', 'b'), "
                      "pairing='product')")
    assert len(d.views()) == 4 and build_defense(repr(d)) == d
    z = Defense(build_transform("slq()"), ("a", "b", "c"), vote="majority")
    assert [m for _, m in z.views()] == ["a", "b", "c"] and z.randomized
    with pytest.raises(ValueError, match="one transform per member"):
        Defense((build_transform("jpeg(quality=20)"), build_transform("jpeg(quality=40)")), ("a", "b", "c"))
    with pytest.raises(SpecError, match="did you mean"):
        build_defense("ensembel()")


def test_majority_vote_and_tie_break() -> None:
    # three views, classes 0..2: votes 0, 1, 1 -> class 1 wins the majority despite view 0's huge logit
    logits = jnp.array([[[9.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]], [[0.0, 1.0, 0.5]]])
    assert int(jnp.argmax(combine(logits, "majority"), -1)[0]) == 1
    assert int(jnp.argmax(combine(logits, "mean_logits"), -1)[0]) == 0
    # a 1-1 tie between classes 0 and 2 is broken by the mean logits (class 2: (0 + 3) / 2 > (2 + 0) / 2)
    tie = jnp.array([[[2.0, 0.0, 0.0]], [[0.0, 0.0, 3.0]]])
    assert int(jnp.argmax(combine(tie, "majority"), -1)[0]) == 2
    scores = np.asarray(combine(tie, "majority"))[0]
    assert 0.0 < scores[2] - scores[0] < 0.5  # the tie-break term never outweighs a vote
    # 2-2 tie between classes 0 and 1 while class 2 dominates the mean logits (one view only):
    # class 1's larger mean must still win (a softmax tie-break rounds both terms to 0 here)
    dominated = jnp.array([[[1.0, 0.0, -40.0]], [[1.0, 0.0, -40.0]], [[-1.0, 2.0, -40.0]],
                           [[-1.0, 2.0, -40.0]], [[0.0, 0.0, 360.0]]])  # votes 2, 2, 1; means 0, 0.8, 40
    assert int(jnp.argmax(combine(dominated, "mean_logits"), -1)[0]) == 2
    assert int(jnp.argmax(combine(dominated, "majority"), -1)[0]) == 1
    # equal votes and equal mean logits: the lower class, as argmax would pick
    even = jnp.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert int(jnp.argmax(combine(even, "majority"), -1)[0]) == 0


def _edited(tmp_path: Path, old: str, new: str, name: str = "ident") -> Protocol:
    """Protocol ``name`` (one PGD at two levels) parsed after replacing ``old`` by ``new``."""
    text = GOOD.format(name=name, attack="pgd(eps=8, steps=5)", knowledge='["gray-box", "adaptive"]')
    assert old in text, old
    d = tmp_path / f"v{len(list(tmp_path.glob('v*')))}"
    d.mkdir()
    (d / f"{name}.toml").write_text(text.replace(old, new, 1))
    return parse_protocol(d / f"{name}.toml")


IDENTITY_KEEPING = {  # edits that change the file's bytes but no score
    "comment": ("dataset =", "# a comment\ndataset ="),
    "description": ("dataset =", 'description = "now described"\ndataset ='),
    "version label": ("version = 1", "version = 2"),
    "defense list": ('defenses = ["identity()"]', 'defenses = ["identity()", "jpeg(quality=75)"]'),
    "spec spacing": ('"pgd(eps=8, steps=5)"', '"pgd(eps=8,steps=5)"'),
}
IDENTITY_CHANGING = {  # edits that change what is scored
    "attack budget": ('"pgd(eps=8, steps=5)"', '"pgd(eps=4, steps=5)"'),
    "knowledge": ('knowledge = ["gray-box", "adaptive"]', 'knowledge = ["gray-box"]'),
    "images": ("n = 10", "n = 9"),
    "seed": ("seed = 0", "seed = 1"),
    "base model": ('base = "resnet20"', 'base = "resnet32"'),
    "draws": ("draws = 2", "draws = 3"),
    "eot": ("eot = 2", "eot = 4"),
    "batch size": ("batch_size = 10", "batch_size = 5"),
    "threshold": ("l2_threshold = 0.5", "l2_threshold = 0.25"),
}


@pytest.mark.parametrize("edit", sorted(IDENTITY_KEEPING))
def test_a_comment_edit_keeps_the_protocol_identity(tmp_path: Path, edit: str) -> None:
    from bench.eval.protocol import same_protocol

    before, after = _edited(tmp_path, "", ""), _edited(tmp_path, *IDENTITY_KEEPING[edit])
    assert before.sha256 != after.sha256 and before.identity == after.identity
    assert same_protocol(before.header(), after) and same_protocol(after.header(), before)
    # a result from before identities carries only the sha256: it matches the same bytes alone
    old = {k: v for k, v in before.header().items() if k != "identity"}
    assert same_protocol(old, before) and not same_protocol(old, after)


@pytest.mark.parametrize("edit", sorted(IDENTITY_CHANGING))
def test_a_scoring_edit_changes_the_protocol_identity(tmp_path: Path, edit: str) -> None:
    from bench.eval.protocol import same_protocol

    before, after = _edited(tmp_path, "", ""), _edited(tmp_path, *IDENTITY_CHANGING[edit])
    assert before.identity != after.identity and not same_protocol(before.header(), after)


def test_the_knowledge_levels_are_defined_once() -> None:
    import json

    from bench.eval import protocol, results
    from bench.eval.knowledge import LEVELS, Knowledge

    assert LEVELS == ("gray-box", "transfer", "adaptive") and protocol.KNOWLEDGE is LEVELS is results.KNOWLEDGE_LEVELS
    assert Knowledge.ADAPTIVE == "adaptive" and str(Knowledge.GRAY_BOX) == "gray-box"
    assert json.dumps({"knowledge": Knowledge.TRANSFER}) == '{"knowledge": "transfer"}'
