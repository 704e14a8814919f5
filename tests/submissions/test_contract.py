"""Every registered transform meets the submission contract (``bench.submissions.submit``).

Walks the whole transform registry, each transform with its default arguments, so that a new
built-in defense is held to the same checks as a submitted one without being listed here. Only
the iteration counts of the two TV solvers are lowered, which the checks do not depend on.
"""

from __future__ import annotations

import pytest

from bench.core.transform import TRANSFORMS, build_transform
from bench.submissions.submit import validate_transform

# fewer solver iterations (the contract is about shapes, ranges, keys, jit and gradients)
FASTER = {"tvd": "tvd(iters=5)", "tvm": "tvm(iters=5)"}


@pytest.fixture(autouse=True)
def _quilting_db(small_quilting_db: None) -> None:
    """No CIFAR-10 patch database is built for ``quilting()`` (``tests/conftest.py``)."""


def test_the_walk_covers_the_builtins() -> None:
    assert {"identity", "jpeg", "slq", "fd", "median", "bitdepth", "tvd", "tvm", "quilting"} <= set(TRANSFORMS.names())
    assert set(FASTER) <= set(TRANSFORMS.names())


@pytest.mark.parametrize("name", TRANSFORMS.names())
def test_every_registered_transform_meets_the_submission_contract(name: str) -> None:
    validate_transform(build_transform(FASTER.get(name, f"{name}()")))
