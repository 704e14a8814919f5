"""What ``shieldbench check`` can expect of a re-run: exact numbers, or only numbers near them.

A result records what its numbers depend on besides the protocol: the package versions, the
models' weight hashes and, since this module, a hash of the defense's code and of the attacks'
code (``provenance.code``). Scoring is keyed by the protocol's seed, so a re-run with the same
code, models and versions should give every number exactly (the runs here are bit-identical);
one that moves anyway points at the machine (another CPU's floating-point kernels). When
something did change, ``check`` says what, plainly, before it compares numbers against the
tolerance.
"""

from __future__ import annotations

from typing import Any


def _short(h: str | None) -> str:
    return "none" if h is None else h[:12]


def differences(stored: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """What differs between the provenance of a stored result and of its re-run (plain phrases)."""
    out = []
    then, now = stored["provenance"].get("code"), fresh["provenance"].get("code", {})
    if then is None:
        out.append("no code hash was recorded with it (an older result), so a change of its code would go unseen")
    else:
        for part in sorted(set(then) | set(now)):
            if then.get(part) != now.get(part):
                out.append(f"its {part} code changed since it was recorded ({_short(then.get(part))} -> "
                           f"{_short(now.get(part))})")
    v_then, v_now = stored["provenance"].get("versions", {}), fresh["provenance"].get("versions", {})
    for pkg in sorted(set(v_then) | set(v_now)):
        if v_then.get(pkg) != v_now.get(pkg):
            out.append(f"{pkg} {v_then.get(pkg, 'absent')} when recorded, {v_now.get(pkg, 'absent')} now")
    m_then, m_now = stored["provenance"].get("models", {}), fresh["provenance"].get("models", {})
    for m in sorted(set(m_then) | set(m_now)):
        if m_then.get(m) != m_now.get(m):
            out.append(f"model {m}'s weights changed since it was recorded ({_short(m_then.get(m))} -> "
                       f"{_short(m_now.get(m))})")
    return out


def expectations(stored: list[dict[str, Any]], fresh: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Defense spec -> what differs (empty: the same code, models and versions, so exact numbers)."""
    by_spec = {r["defense"]["spec"]: r for r in stored}
    return {f["defense"]["spec"]: differences(by_spec[f["defense"]["spec"]], f)
            for f in fresh if f["defense"]["spec"] in by_spec}
