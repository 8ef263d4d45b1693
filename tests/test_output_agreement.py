"""The agreement asked of an exported file's outputs with the collection's."""

from __future__ import annotations

import numpy as np
import pytest

from torchbricks._output_agreement import DISCRETE_MISMATCH_SHARE, output_gap


def test_a_float_output_counts_its_largest_difference_however_few_elements_differ() -> None:
    reference = np.zeros(100_000, dtype=np.float32)
    actual = reference.copy()
    actual[3] = 0.5

    assert output_gap(actual, reference) == 0.5


@pytest.mark.parametrize(("differing", "gap"), [(0, 0.0), (8, 0.0), (9, 1.0)])
def test_an_integer_output_may_differ_on_a_small_share_of_its_elements(differing: int, gap: float) -> None:
    reference = np.zeros(8192, dtype=np.int64)  # 8192 pixels: a share of 1e-3 is 8 of them
    actual = reference.copy()
    actual[:differing] = 1

    assert 8 <= DISCRETE_MISMATCH_SHARE * reference.size < 9
    assert output_gap(actual, reference) == gap


def test_a_non_finite_value_on_one_side_only_is_an_infinite_gap() -> None:
    assert output_gap(np.array([np.nan, 1.0]), np.array([np.nan, 1.0])) == 0.0
    assert output_gap(np.array([np.nan, 1.0]), np.array([0.0, 1.0])) == np.inf
