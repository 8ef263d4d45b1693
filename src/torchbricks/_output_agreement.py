"""How far an output of an exported file may lie from the collection's: the check of `model.onnx` and `deploy.onnx`.

numpy only, so the deployment side can use it without torch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DISCRETE_MISMATCH_SHARE", "output_gap"]

# An integer output (a class per pixel, a label, a 0/1 flag) is decided by comparing floats: where two classes'
# scores lie within the runtimes' rounding of each other, onnxruntime and PyTorch may decide otherwise. On a
# segmentation head in training one pixel of 2.4 million did (64 images of 192 x 192, two probabilities 2e-7 apart).
DISCRETE_MISMATCH_SHARE = 1e-3


def output_gap(actual: np.ndarray, reference: np.ndarray) -> float:
    """The largest absolute difference between an output and its reference.

    A NaN or infinity on one side only is an infinite difference (`max` would pass a NaN by), the same non-finite
    value on both sides none. An integer output whose elements differ on at most `DISCRETE_MISMATCH_SHARE` of them
    (near ties of two classes) counts as equal; beyond that share, its largest difference counts.

    Example:
        >>> output_gap(np.array([1.0, np.nan, np.inf]), np.array([1.5, np.nan, np.inf]))
        0.5
        >>> output_gap(np.array([np.nan]), np.array([0.0]))
        inf
        >>> mask = np.zeros((2, 64, 64), dtype=np.int64)
        >>> flipped = mask.copy(); flipped[1, 5, 7] = 2  # one pixel in 8192
        >>> output_gap(flipped, mask), output_gap(flipped[:, :8, :8], mask[:, :8, :8])  # one in 128
        (0.0, 2.0)
    """
    if np.issubdtype(actual.dtype, np.integer) and np.issubdtype(reference.dtype, np.integer) and actual.shape == reference.shape:
        differing = actual != reference
        if np.count_nonzero(differing) <= DISCRETE_MISMATCH_SHARE * differing.size:
            return 0.0
    first, second = actual.astype(np.float64), reference.astype(np.float64)
    same = (first == second) | (np.isnan(first) & np.isnan(second))
    with np.errstate(invalid="ignore"):  # inf - inf is nan where `same` already holds; nan - x stays nan (-> inf)
        gap = np.where(same, 0.0, np.abs(first - second))
    return float(np.max(np.nan_to_num(gap, nan=np.inf), initial=0.0))
