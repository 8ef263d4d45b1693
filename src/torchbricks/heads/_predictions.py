"""What the report adapters of the head kinds share: mistakes-first ordering, class names, colours, and the
predictions of a head whose truth and prediction are class indices (classification) or masks (segmentation)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from torchbricks._conventions import IGNORE_INDEX
from torchbricks._palette import PALETTE

__all__ = [
    "MASK_ALPHA",
    "HeadPredictions",
    "MatchedPredictions",
    "class_indices",
    "class_names_of",
    "class_overlay",
    "color_cycle",
    "greedy_matched_rows",
    "indexed_predictions",
    "mistakes_first",
    "show_image",
    "split_padded",
    "tag",
]


def mistakes_first(errors: np.ndarray) -> np.ndarray:
    """Indices by decreasing error; equal errors keep their original order (a stable sort)."""
    return np.argsort(-errors, kind="stable")


def class_names_of(class_names: Sequence[str] | None, count: int) -> list[str]:
    """`count` names: those given, then the indices of the classes without one."""
    names = [str(name) for name in class_names] if class_names is not None else []
    return names[:count] + [str(index) for index in range(len(names), count)]


def color_cycle() -> list[str]:
    """Matplotlib's ten tab colours, one per class index (modulo ten)."""
    return [f"tab:{name}" for name in ("blue", "orange", "green", "red", "purple", "brown", "pink", "olive", "cyan", "gray")]


def show_image(cells: Iterator[Any], image: np.ndarray) -> Any:
    """The next cell of a section, with `image` drawn in it."""
    axes = next(cells)
    axes.imshow(image, interpolation="nearest")
    return axes


@dataclass
class HeadPredictions:
    """A head's test predictions beside the ground truth, with the images they were made on.

    Attributes:
        head: The head's name (the collection path of its metric brick's parent).
        kind: `classification` (truth and prediction are class indices [N]) or `segmentation` (masks [N, H, W]).
        images: The input images, [N, H, W, 3] floats in [0, 1] ready to draw.
        truth: The targets.
        prediction: The predicted classes or masks.
    """

    head: str
    kind: Literal["classification", "segmentation"]
    images: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray

    @property
    def cells_per_sample(self) -> int:
        """A class is written above its image; a mask is drawn beside the true one."""
        return 1 if self.kind == "classification" else 2

    def errors(self) -> np.ndarray:
        """Per sample: 1.0 for a wrong class, or the fraction of wrong scored pixels of a mask."""
        if self.kind == "classification":
            return (self.truth != self.prediction).astype(np.float64)
        scored = self.truth != IGNORE_INDEX
        wrong = (self.truth != self.prediction) & scored
        return wrong.reshape(len(wrong), -1).sum(axis=1) / np.maximum(scored.reshape(len(scored), -1).sum(axis=1), 1)

    def order(self) -> np.ndarray:
        """Sample indices, mistakes first (the worst first), then the rest in their original order."""
        return mistakes_first(self.errors())

    def title_detail(self) -> str:
        """What the section title adds (nothing)."""
        return ""

    def draw(self, cells: Iterator[Any], index: int, error: float, class_names: Sequence[str] | None) -> None:
        """Draws sample `index`: the true and predicted class above the image, or the two masks over it."""
        color = "tab:red" if error > 0 else "black"
        if self.kind == "classification":
            truth, guess = int(self.truth[index]), int(self.prediction[index])
            names = class_names_of(class_names, max(truth, guess) + 1)
            show_image(cells, self.images[index]).set_title(f"true {names[truth]}\npred {names[guess]}", fontsize=9, color=color)
            return
        for label, mask in (("true", self.truth[index]), ("pred", self.prediction[index])):
            axes = show_image(cells, self.images[index])
            axes.imshow(class_overlay(mask), interpolation="nearest")
            caption = label if label == "true" else f"pred ({error:.0%} wrong)"
            axes.set_title(caption, fontsize=9, color=color if label == "pred" else "black")


MASK_ALPHA = 0.55
"""Opacity of a class's colour over the image in the report's mask pictures."""


def class_overlay(mask: np.ndarray) -> np.ndarray:
    """RGBA floats [H, W, 4] of a class mask [H, W]: each class in its palette colour (`torchbricks._palette`, as
    `predict` and the training pictures colour it, the same in every picture), `MASK_ALPHA` opaque; the background
    (0) and the ignored pixels (255) clear.

    Example:
        >>> class_overlay(np.array([[0, 1, 13]]))[0, :, 3].tolist() == [0.0, MASK_ALPHA, MASK_ALPHA]
        True
    """
    colours = np.asarray(PALETTE, dtype=np.float64) / 255.0
    overlay = np.zeros((*mask.shape, 4))
    shown = (mask != 0) & (mask != IGNORE_INDEX)
    overlay[shown, :3] = colours[mask[shown].astype(np.int64) % len(colours)]
    overlay[shown, 3] = MASK_ALPHA
    return overlay


def class_indices(pair: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Predicted and true class indices of the same shape from (prediction, truth) (scores or logits argmax'ed over
    axis 1; against 0/1 targets, one score per sample or pixel, a probability or a logit, decided as torchmetrics'
    binary metrics decide it: a sigmoid unless every value is in [0, 1], then above 1/2), or None.

    Example:
        >>> [indices.tolist() for indices in class_indices((np.array([0.2, 0.9]), np.array([0, 0])))]
        [[0, 1], [0, 0]]
    """
    if pair is None:
        return None
    prediction, truth = pair[0], pair[1].astype(np.int64)
    if prediction.ndim == truth.ndim + 1:
        prediction = prediction.argmax(axis=1)
    if _binary_scores(prediction, truth):
        scores = prediction if ((prediction >= 0) & (prediction <= 1)).all() else 1 / (1 + np.exp(-prediction))
        prediction = scores > 0.5
    prediction = prediction.astype(np.int64)
    return (prediction, truth) if prediction.shape == truth.shape else None


def _binary_scores(prediction: np.ndarray, truth: np.ndarray) -> bool:
    """Whether `prediction` holds scores of 0/1 targets (truncated to integers they were all class 0)."""
    if not np.issubdtype(prediction.dtype, np.floating) or prediction.shape != truth.shape:
        return False
    return bool(np.isin(truth, (0, 1, IGNORE_INDEX)).all()) and not bool((prediction == np.round(prediction)).all())


class MatchedPredictions:
    """Base of the heads whose images hold several objects (boxes, points): truth and prediction per image, drawn
    side by side, the images with the most unmatched objects first. Subclasses give `truth`, `prediction`,
    `errors()` and `draw_objects(axes, objects, class_names)`."""

    head: str
    images: np.ndarray
    truth: Sequence[Any]
    prediction: Sequence[Any]
    cells_per_sample = 2

    def affinity(self, truth: Any, prediction: Any) -> np.ndarray:
        """[P, N]: how well each predicted object (rows, in matching order) fits each true object; -inf: cannot match."""
        raise NotImplementedError

    match_threshold: float
    """A predicted object matches a true one when their affinity is at least this."""

    def matched(self, truth: Any, prediction: Any) -> np.ndarray:
        """Which predicted objects (in matching order) match a true object: `greedy_matched_rows` of `affinity`, or
        the head's metric's own matching where a subclass has one (points)."""
        return greedy_matched_rows(self.affinity(truth, prediction), self.match_threshold)

    def errors(self) -> np.ndarray:
        """Per image: predicted objects matching no true object (and no ignored one, `unmatched_on_ignored`) plus
        true objects missed (`matched`)."""
        counts = []
        for index, (truth, prediction) in enumerate(zip(self.truth, self.prediction, strict=True)):
            matched = self.matched(truth, prediction)
            spared = self.unmatched_on_ignored(index, ~matched)
            counts.append(len(truth.labels) + len(prediction.labels) - 2 * int(matched.sum()) - spared)
        return np.asarray(counts, dtype=np.float64)

    def unmatched_on_ignored(self, index: int, unmatched: np.ndarray) -> int:
        """How many of image `index`'s unmatched predicted objects (`unmatched`: per row of `affinity`) found an
        object the evaluation ignores, and so are no mistake; none here."""
        return 0

    def order(self) -> np.ndarray:
        """Image indices, the most unmatched objects first, then the rest in their original order."""
        return mistakes_first(self.errors())

    def draw_objects(self, axes: Any, objects: Any, class_names: Sequence[str] | None) -> None:
        raise NotImplementedError

    def draw(self, cells: Iterator[Any], index: int, error: float, class_names: Sequence[str] | None) -> None:
        """Draws image `index` twice: its true objects (with their count), then the predicted ones (with the unmatched)."""
        for label, objects in (("true", self.truth[index]), ("pred", self.prediction[index])):
            axes = show_image(cells, self.images[index])
            limits = axes.get_xlim(), axes.get_ylim()
            self.draw_objects(axes, objects, class_names)
            axes.set_xlim(limits[0])  # objects reaching out of the image do not shrink it
            axes.set_ylim(limits[1])
            if label == "true":
                axes.set_title(f"true ({len(objects.labels)})", fontsize=9, color="black")
            else:
                axes.set_title(f"pred ({error:.0f} unmatched)", fontsize=9, color="tab:red" if error > 0 else "black")


def greedy_matched_rows(affinity: np.ndarray, threshold: float) -> np.ndarray:
    """Which predicted objects (rows, in order) match a true object (columns): each row takes the free column of
    highest affinity, if that affinity is at least `threshold`.

    Example:
        >>> greedy_matched_rows(np.array([[0.9, 0.8], [0.7, -np.inf], [0.6, 0.2]]), threshold=0.5).tolist()
        [True, False, False]
    """
    free = np.ones(affinity.shape[1], dtype=bool)
    matched = np.zeros(affinity.shape[0], dtype=bool)
    for row, values in enumerate(affinity):
        candidates = np.where(free, values, -np.inf)
        if len(candidates) and candidates.max() >= threshold:
            free[int(candidates.argmax())] = False
            matched[row] = True
    return matched


def indexed_predictions(kind: Literal["classification", "segmentation"], collected: Any, ndim: int) -> HeadPredictions | None:
    """The predictions of a head whose truth and prediction are class indices of `ndim` dimensions (1: classes [N],
    3: masks [N, H, W]) from what the report collected (a `Collected`), or None when they are not."""
    found = class_indices(collected.pair())
    if found is None or found[1].ndim != ndim:
        return None
    return HeadPredictions(collected.head, kind, collected.images, found[1], found[0])


def split_padded(batches: list[list[np.ndarray]], keep_predicted: Any) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]]]:
    """Per image, the predicted values (inputs but the last two, kept where `keep_predicted(*values)` is True) and the
    true values (the last two inputs, objects and labels, padding label < 0 removed), from padded batches."""
    truth, prediction = [], []
    for batch in zip(*batches, strict=True):
        *predicted, true_objects, true_labels = batch
        for index in range(len(true_objects)):
            values = [value[index] for value in predicted]
            keep = keep_predicted(*values)
            prediction.append([value[keep] for value in values])
            real = true_labels[index] >= 0
            truth.append([true_objects[index][real], true_labels[index][real].astype(np.int64)])
    return truth, prediction


def tag(axes: Any, x: float, y: float, label: int, text: str, va: str = "bottom") -> str:
    """Writes `text` at (x, y) on a patch of the colour of class `label`; returns that colour."""
    colors = color_cycle()
    color = colors[int(label) % len(colors)]
    axes.text(x, y, text, fontsize=6, color="white", va=va, bbox={"facecolor": color, "pad": 1, "linewidth": 0}, clip_on=True)
    return color
