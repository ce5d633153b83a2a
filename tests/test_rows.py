"""Append-only rows (detectors.rows): the same array as joining the pieces, whatever the blocks."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.rows import Rows


@pytest.mark.parametrize("block", [1, 3, 7, 64])
def test_rows_equal_the_joined_pieces_whatever_the_block_size(block: int) -> None:
    rng = np.random.default_rng(0)
    pieces = [rng.normal(size=(int(n), 5)).astype(np.float32) for n in rng.integers(0, 9, 40)]
    rows = Rows(np.float32, 5, block=block)
    for piece in pieces:
        rows.append(piece)
    assert len(rows) == sum(len(p) for p in pieces)
    np.testing.assert_array_equal(rows.array(), np.concatenate(pieces))


def test_rows_can_be_read_again_and_grow_after_a_read() -> None:
    rows = Rows(np.float64, block=4)
    rows.append(np.arange(10.0))
    first = rows.array()
    assert rows.array() is first  # joined once, then kept as the store
    rows.append([10.0, 11.0])
    np.testing.assert_array_equal(rows.array(), np.arange(12.0))
    np.testing.assert_array_equal(first, np.arange(10.0))


def test_empty_rows_have_the_right_shape_and_dtype() -> None:
    assert Rows(np.float32, 40).array().shape == (0, 40)
    empty = Rows(np.bool_).array()
    assert empty.shape == (0,)
    assert empty.dtype == np.bool_
