"""torchvision's antialiased bilinear resize of uint8 images, in numpy: what `torchbricks.deploy` gives the model.

Training resizes its uint8 images with torchvision's `Resize(antialias=True)`, which on x86 CPUs with AVX2 (where
torchvision resizes uint8 natively) computes in fixed point: the filter's weights of each output pixel (a triangle as
wide as the scale when shrinking, linear interpolation when enlarging, half-pixel centres) are rounded to integers
of at most 15 bits, `precision` bits below the point, each pass rounds its sums back to uint8, and the width is
resized before the height. Pillow's bilinear resize follows the same filter with 22-bit weights, and resized the
height first for a picture taller than wide: its pixels differed from torchvision's by one grey level on 0.2-0.3 %
of the values of photographs and on a fifth of those of a 900 x 40 picture, which moved a box of a one-epoch 32 px
detector by 5 pixels. This module computes torchvision's own arithmetic, so the exported model is given the pixels
the trained collection is given (`tests/test_deploy.py` compares them).
"""

from __future__ import annotations

import numpy as np

__all__ = ["resize_antialiased"]

_MAX_PRECISION = 22
_MAX_WEIGHT = 1 << 15


def resize_antialiased(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`image` uint8 [H, W, C] resized to [height, width, C] as torchvision's `Resize(antialias=True)` resizes it.

    Example:
        >>> resize_antialiased(np.array([[[0], [255]]], dtype=np.uint8), 1, 4)[..., 0].tolist()
        [[0, 64, 191, 255]]
    """
    if image.shape[1] != width:
        image = _resample(image, 1, width)
    if image.shape[0] != height:
        image = _resample(image, 0, height)
    return image


def _taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """For each output pixel: its first input pixel, its integer weights [out, taps] and their precision (bits)."""
    scale = in_size / out_size
    support = scale if scale >= 1.0 else 1.0  # the triangle widens when shrinking (antialiasing)
    inverse = 1.0 / scale if scale >= 1.0 else 1.0
    centres = (np.arange(out_size) + 0.5) * scale
    starts = np.maximum(np.trunc(centres - support + 0.5).astype(np.int64), 0)
    sizes = np.minimum(np.trunc(centres + support + 0.5).astype(np.int64), in_size) - starts
    offsets = np.arange(int(sizes.max()))
    distances = np.abs(((offsets[None, :] + starts[:, None]) - centres[:, None] + 0.5) * inverse)
    weights = np.where(offsets[None, :] < sizes[:, None], np.maximum(1.0 - distances, 0.0), 0.0)
    totals = np.zeros(out_size)
    for column in weights.T:  # summed in order, as torch sums them: a pairwise sum can differ in the last bit
        totals = totals + column
    weights = np.divide(weights, totals[:, None], out=weights, where=totals[:, None] != 0)
    precision = 0  # the most bits that keep the largest weight within int16
    while precision < _MAX_PRECISION and int(0.5 + weights.max() * (1 << (precision + 1))) < _MAX_WEIGHT:
        precision += 1
    scaled = weights * (1 << precision)
    return starts, np.trunc(scaled + np.where(scaled < 0, -0.5, 0.5)).astype(np.int32), precision


def _resample(image: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    """One pass along `axis`: each output pixel the rounded weighted sum of its taps, clipped to uint8."""
    in_size = image.shape[axis]
    starts, weights, precision = _taps(in_size, out_size)
    moved = np.moveaxis(image, axis, 0)
    lines = np.ascontiguousarray(moved).reshape(in_size, -1)  # a tap gathers whole lines: up to 5 times faster than strided
    # int32 holds every sum: the weights add up to about 2**22 at most, times 255, plus the rounding half
    sums = np.full((out_size, lines.shape[1]), 1 << (precision - 1), np.int32)
    product = np.empty_like(sums)
    for tap in range(weights.shape[1]):  # a tap past a pixel's last has weight 0: its index is only kept in the image
        np.multiply(lines[np.minimum(starts + tap, in_size - 1)], weights[:, tap, None], out=product)
        sums += product
    resized = np.clip(sums >> precision, 0, 255).astype(np.uint8).reshape(out_size, *moved.shape[1:])
    return np.moveaxis(resized, 0, axis)
