"""Built-in preprocessing defenses; importing this package registers them.

Each module holds one component and cites its paper; see docs/design.md#defenses for the protocol.
"""

from defenses import bitdepth, fd, jpeg, median, quilting, shield, slq, tvd, tvm  # noqa: F401
