"""Gives stored results and job partials written before protocol identities their identity.

A result names the protocol it was scored under by the file's sha256; since protocol identities
(``bench.eval.protocol``: a hash of the fields that change scores, not of comments) a result also
carries ``protocol.identity``, and that is what decides whether it still belongs to the protocol.
This finds, for every ``*.json`` under the given roots (default: ``leaderboards/results`` and
``leaderboards/partials``) whose protocol header has no identity, the version of
``bench/protocols/<name>.toml`` with that sha256 (the file in the checkout, or one in its git
history), computes that version's identity and writes it into the file (atomically; nothing else
in the file changes). A result whose protocol file version cannot be found is listed and left
alone. Nothing is re-computed.

    python scripts/migrate_protocol_identity.py [--check] [ROOT ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.core.io import atomic_write_json, sha256_bytes
from bench.eval.protocol import PROTOCOL_DIR, parse_protocol

ROOT = Path(__file__).resolve().parent.parent


def file_versions(name: str) -> dict[str, bytes]:
    """sha256 -> bytes of every version of protocol ``name``'s file: the checkout's and git's."""
    path = PROTOCOL_DIR / f"{name}.toml"
    out = {sha256_bytes(path.read_bytes()): path.read_bytes()} if path.is_file() else {}
    rel = path.relative_to(ROOT)
    try:
        commits = subprocess.run(["git", "-C", str(ROOT), "log", "--format=%H", "--", str(rel)], check=True,
                                 capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return out  # no git here: the checkout's file only
    for c in commits:
        shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{c}:{rel}"], capture_output=True)
        if shown.returncode == 0:
            out.setdefault(sha256_bytes(shown.stdout), shown.stdout)
    return out


def identity_of(name: str, text: bytes) -> str:
    """The identity of one version of protocol ``name``'s file (parsed from a temporary copy)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"{name}.toml"
        path.write_bytes(text)
        return parse_protocol(path).identity


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("roots", nargs="*", type=Path,
                    default=[ROOT / "leaderboards" / "results", ROOT / "leaderboards" / "partials"])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file lacks its identity")
    args = ap.parse_args(argv)
    versions: dict[str, dict[str, bytes]] = {}
    identities: dict[tuple[str, str], str] = {}
    todo, lost = 0, []
    for root in args.roots:
        for f in sorted(root.rglob("*.json")):
            obj = json.loads(f.read_text())
            proto = obj.get("protocol") if isinstance(obj, dict) else None
            if not isinstance(proto, dict) or "identity" in proto or "sha256" not in proto or "version" not in proto:
                continue  # migrated already, or not a result / partial (e.g. an experiment's file)
            name, sha = proto["name"], proto["sha256"]
            if (name, sha) not in identities:
                text = versions.setdefault(name, file_versions(name)).get(sha)
                if text is None:
                    lost.append(f"{f}: no version of {name}.toml with sha256 {sha[:12]} (checkout or git history)")
                    continue
                identities[name, sha] = identity_of(name, text)
            todo += 1
            if not args.check:
                proto["identity"] = identities[name, sha]
                atomic_write_json(f, obj)
    for line in lost:
        print(line, file=sys.stderr)
    print(f"{todo} file(s) {'lack' if args.check else 'given'} their protocol identity; {len(lost)} left alone")
    return 1 if args.check and todo else 0


if __name__ == "__main__":
    sys.exit(main())
