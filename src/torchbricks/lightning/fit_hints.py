"""What a finished run's history says a user should change: a classifier that never fit its own training images.

A classifier whose training accuracy (on the images as trained, augmented until the classification task's last
phase without augmentations; as the history logs it) never got halfway from chance to 1 in a run of `MIN_EPOCHS`
epochs or more could not tell the classes apart as it was trained. Either the
augmentations destroy what tells them apart (a turn where the angle is the label, a mirror image where the side is),
or the run needs more time. `torchbricks train` prints the hint after the test figures; nothing here changes a number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["MIN_EPOCHS", "fit_hints"]

MIN_EPOCHS = 10
"""Runs shorter than this (a smoke test, `trainer.max_epochs=1`) get no hint: they were meant to be short."""
_TRAIN_ACCURACY = re.compile(r"^train/(?P<head>.+)/accuracy$")


def fit_hints(history: Sequence[dict[str, Any]], class_names: Sequence[str] | None, heads: Sequence[str]) -> list[str]:
    """The hints for a run's per-epoch `history` (`history.json`) of the classification `heads` (one class of
    `class_names` per image: their test metrics have a confusion matrix; multilabel heads, whose accuracy is per class
    and label, have none and are not judged here).

    Example:
        >>> history = [{"epoch": epoch, "train/classification/accuracy": 0.45} for epoch in range(20)]
        >>> names = ["square", "tilted", "rectangle"]
        >>> fit_hints(history, names, ["classification"])[0].split(" at best")[0]
        'The classification head never fit its own training images: 0.450 accuracy'
        >>> fitted = [{**entry, "train/classification/accuracy": 0.7} for entry in history]  # past 0.667, halfway
        >>> fit_hints(history[:5], names, ["classification"]), fit_hints(fitted, names, ["classification"])
        ([], [])
    """
    if len(history) < MIN_EPOCHS or not class_names or len(class_names) < 2:
        return []
    chance = 1.0 / len(class_names)
    halfway = chance + (1.0 - chance) / 2
    hints = []
    logged = {match["head"] for entry in history for key in entry if (match := _TRAIN_ACCURACY.match(key))}
    for head in sorted(logged & set(heads)):
        values = [float(entry[f"train/{head}/accuracy"]) for entry in history if f"train/{head}/accuracy" in entry]
        best = max(values, default=1.0)
        if best >= halfway:
            continue
        hints.append(
            f"The {head} head never fit its own training images: {best:.3f} accuracy at best in {len(history)} epochs "
            f"(chance {chance:.3f}; on the training images as trained, augmented until a last phase without). If the "
            "angle or the side of an object is what tells the classes apart (a turned form, text, arrows), the "
            "packaged turns and mirror images destroy the label: train with data.augmentations.1.degrees=0 (and "
            "data.augmentations.0.p=0). Otherwise give the run more time (trainer.max_time)."
        )
    return hints
