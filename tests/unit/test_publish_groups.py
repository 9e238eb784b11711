"""Which objects of a batch publish together: small ones share a transaction, a big one (or one of unknown size)
publishes alone, and the order never changes."""

from __future__ import annotations

import pytest

from pipeline.ports import ObjectRef
from pipeline.process import publish_groups


def refs(*sizes: int | None) -> list[ObjectRef]:
    return [ObjectRef("b", f"k{i}", etag="e", size=size) for i, size in enumerate(sizes)]


@pytest.mark.parametrize(
    ("sizes", "groups"),
    [
        ((10, 20, 30), [[0, 1, 2]]),
        ((60, 50), [[0], [1]]),  # 110 > 100: the second starts a new group
        ((10, 200, 10, 10), [[0], [1], [2, 3]]),  # the big one alone, the small ones around it grouped
        ((10, None, 10), [[0], [1], [2]]),  # unknown size: alone
        ((100,), [[0]]),
        ((), []),
    ],
)
def test_objects_publish_together_up_to_the_byte_limit_in_order(
    sizes: tuple[int | None, ...], groups: list[list[int]]
) -> None:
    # Given a batch of objects with these sizes, and a limit of 100 bytes
    batch = refs(*sizes)
    # When it is cut into publish groups
    cut = publish_groups(batch, max_bytes=100)
    # Then the groups are as expected, and together they are the batch in its order
    assert [[batch.index(r) for r in group] for group in cut] == groups
    assert [r for group in cut for r in group] == batch
