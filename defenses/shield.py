"""SHIELD's ensembles of vaccinated models (Das et al., "SHIELD: Fast, Practical Defense and
Vaccination for Deep Learning using JPEG Compression", KDD 2018, §3.3-3.4).

A *vaccinated* model ``M_q`` is the base model fine-tuned on training images passed through
``jpeg(quality=q)`` (``shieldbench train --init-from resnet20 --transform 'jpeg(quality=q)'``);
in this zoo it is ``resnet20-vacc-q<q>``. Registered defenses:

* ``shield(qualities=(20, 40, 60, 80))``: SLQ over ``qualities``; members M_q for each q, each
  member seeing its *own* SLQ draw; majority vote (4 votes).
* ``shield_mxq(qualities=...)``: the paper's ``Mq x q``: every model votes on every
  ``jpeg(quality=q)`` image (16 votes for 4 qualities); majority.
* ``shield_mq(qualities=...)``: the paper's ``Mq - q``: model M_q votes on ``jpeg(quality=q)``;
  majority.
* ``vaccinated(quality=q, model=None)``: one vaccinated model behind ``jpeg(quality=q)``
  (``model`` picks another vaccination quality, for the paper's Fig. 6 cross pairs).

Departures from the released code (``notes/peers.md``): ties of the majority vote go to the
class with the larger mean logit (the original's ``bincount``/``argmax`` gives them to the
lowest class id, which biases towards class 0); every SLQ draw comes from an explicit key;
SLQ's chroma is quantized per 8x8 chroma block, not copied from full-image decodes (see
``defenses/slq.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.core.defense import Defense, register_defense
from bench.core.transform import build_transform

BASE = "resnet20"


def vaccinated_name(quality: int, base: str = BASE) -> str:
    """Zoo name of the base model vaccinated at JPEG ``quality``: ``resnet20-vacc-q20``."""
    return f"{base}-vacc-q{int(quality)}"


def _qualities(qualities: Sequence[int]) -> tuple[int, ...]:
    qs = tuple(qualities)
    if not qs or any(isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 100 for q in qs):
        raise ValueError(f"qualities must be a non-empty tuple of integers in 1..100, got {qualities!r}")
    if len(set(qs)) != len(qs):
        raise ValueError(f"qualities must be distinct, got {qs}")
    return qs


@register_defense("shield")
def shield(qualities: Sequence[int] = (20, 40, 60, 80)) -> Defense:
    """SLQ + the vaccinated models M_q, one SLQ draw per member, majority vote."""
    qs = _qualities(qualities)
    slq = build_transform(f"slq(qualities={qs!r})")
    return Defense(slq, tuple(vaccinated_name(q) for q in qs), vote="majority")


@register_defense("shield_mxq")
def shield_mxq(qualities: Sequence[int] = (20, 40, 60, 80)) -> Defense:
    """``Mq x q``: every vaccinated model on every JPEG quality, majority vote."""
    qs = _qualities(qualities)
    jpegs = tuple(build_transform(f"jpeg(quality={q})") for q in qs)
    return Defense(jpegs if len(jpegs) > 1 else jpegs[0], tuple(vaccinated_name(q) for q in qs),
                   vote="majority", pairing="product")


@register_defense("shield_mq")
def shield_mq(qualities: Sequence[int] = (20, 40, 60, 80)) -> Defense:
    """``Mq - q``: model M_q votes on ``jpeg(quality=q)``, majority vote."""
    qs = _qualities(qualities)
    jpegs = tuple(build_transform(f"jpeg(quality={q})") for q in qs)
    return Defense(jpegs if len(jpegs) > 1 else jpegs[0], tuple(vaccinated_name(q) for q in qs), vote="majority")


@register_defense("vaccinated")
def vaccinated(quality: int, model: int | None = None) -> Defense:
    """``jpeg(quality)`` in front of M_model (default: M_quality)."""
    (q,) = _qualities((quality,))
    (m,) = _qualities((model if model is not None else quality,))
    return Defense(build_transform(f"jpeg(quality={q})"), (vaccinated_name(m),))
