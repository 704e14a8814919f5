"""The threat models a protocol's attacks run at, defined once (``docs/design.md#threat-models``).

Stored results, protocol files and the CLI spell a level by its value (``"gray-box"``); the
enum's members are ``str``, so ``Knowledge.ADAPTIVE == "adaptive"`` and JSON stays as it was.
"""

from __future__ import annotations

import enum


class Knowledge(str, enum.Enum):
    """What the attacker knows, in the order the runner scores the levels and pages list them."""

    GRAY_BOX = "gray-box"
    """Crafted on the bare base model; the defense is unknown to the attacker."""
    TRANSFER = "transfer"
    """Crafted on another model (the protocol's ``source``): a black-box attacker."""
    ADAPTIVE = "adaptive"
    """Crafted against the defended pipeline (BPDA surrogate gradients, EOT over its randomness)."""

    def __str__(self) -> str:
        return self.value


LEVELS: tuple[str, ...] = tuple(k.value for k in Knowledge)
"""The levels' values, in order."""
