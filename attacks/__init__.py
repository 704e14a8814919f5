"""Attacks by spec string; ``attacks.foolbox_adapter`` is the only module importing Foolbox."""

from attacks.specs import ATTACKS, Attack, build_attack, register_attack

__all__ = ["ATTACKS", "Attack", "build_attack", "register_attack"]
