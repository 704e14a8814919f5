"""The bottom layer: what every other part of shieldbench builds on.

Spec strings and registries (``registry``), transforms and their surrogate gradients
(``transform``), host-code transforms (``host``), defenses as data (``defense``), datasets
(``data``), atomic file writes (``io``) and timing (``timing``). Imports nothing from the layers
above (``docs/design.md#architecture``); the ``attacks`` and ``defenses`` packages share this layer.
"""
