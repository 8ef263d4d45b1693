"""`predictions.png`: each task head's test predictions beside the truth, mistakes first, drawn by its head kind.

`collect_predictions` finds the heads through their metric bricks, runs the test stage and asks each head's kind
(`torchbricks.heads`) for its report adapter; `plot_predictions` draws one titled section per head, each sample in
the cells its predictions draw. The public names are those of `torchbricks.lightning.report`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from torchbricks._conventions import SEPARATOR
from torchbricks._extras import require
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickMetrics
from torchbricks.heads import find_heads, get_head, list_heads
from torchbricks.heads._registry import Collected
from torchbricks.tags import Stage

AnyHeadPredictions = Any
"""A head kind's predictions (`torchbricks.heads._registry.HeadPredictionsLike`): `head`, `kind`, `images`,
`errors()`, `order()`, `title_detail()`, `cells_per_sample` and `draw(cells, index, error, class_names)`."""

FALLBACK_KINDS = ("detection", "points", "multilabel", "segmentation", "classification")
"""The kinds tried, in this order, on a hand-built head whose outputs name no kind (a metric on `./logits`)."""


def collect_predictions(
    collection: BrickCollection, batches: Iterable[Mapping[str, Any]], max_samples: int = 2048
) -> list[AnyHeadPredictions]:
    """Runs the test stage of `collection` over `batches` and keeps each head's predictions and targets.

    A head is the parent of a metric brick; its kind is the one whose outputs the head produces (`find_heads`),
    else the first of `FALLBACK_KINDS` whose adapter accepts the metric's inputs (a hand-built head). The kind's
    `predictions` adapter reads the metric's inputs (predictions first, then targets). The images are the first
    named input holding a batch of images [B, C, H, W]. Only the heads whose targets the first batch carries are
    collected (batches from one source of several label some heads only).
    """
    batches = iter(batches)
    first = next(batches, None)
    if first is None:
        return []
    batches = itertools.chain([first], batches)
    produced = set(collection.plan(tags=Stage.TEST).produced)
    heads = [head for head in _metric_heads(collection) if all(name in first or name in produced for name in head[1])]
    if not heads:
        return []
    companions = _companion_outputs(collection, [names[0] for _, names, _ in heads])
    inputs = {name for _, names, _ in heads for name in names}
    extra = {name for found in companions.values() for name in found} - inputs
    wanted = sorted(inputs | extra)
    kept: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
    kept_images: list[np.ndarray] = []
    seen = 0
    with torch.no_grad():
        for batch in batches:
            computed = [name for name in wanted if name not in batch]
            # Only the bricks the predictions need run: the collection's own metric states stay untouched.
            outputs = {**batch, **collection(named_inputs=dict(batch), tags=Stage.TEST, output_names=computed)}
            image_batch = next((value for value in batch.values() if _is_image_batch(value)), None)
            if image_batch is None:
                return []
            kept_images.append(_displayable(image_batch))
            for name in wanted:
                value = outputs[name]
                if name in batch and value is image_batch:  # an input image batch (a box metric's): kept once, above
                    kept[name].append(np.zeros(len(value), dtype=np.float32))
                    continue
                # Other outputs are kept only where multi-label scores can be, [B, K] (not a segmentation head's maps).
                if name not in extra or (isinstance(value, torch.Tensor) and value.ndim == 2):
                    kept[name].append(value.detach().float().cpu().numpy())
            seen += len(image_batch)
            if seen >= max_samples:
                break
    if not kept_images:
        return []
    images = np.concatenate(kept_images)
    kinds = find_heads(sorted(produced))
    found = []
    for head, names, metric in heads:
        values = [kept[name] for name in names]
        named = sorted(companions.get(names[0], ()), key=lambda name: not name.endswith("probabilities"))
        others = [np.concatenate(kept[name]) for name in named if kept[name]]
        candidates = [kinds[head]] if head in kinds else [kind for kind in FALLBACK_KINDS if kind in list_heads()]
        for kind in candidates:
            predictions = get_head(kind).predictions(Collected(head, images, values, others, metric))
            if predictions is not None:
                found.append(predictions)
                break
    return found


def plot_predictions(
    predictions: Sequence[AnyHeadPredictions],
    class_names: Sequence[str] | None = None,
    n_samples: int = 16,
    columns: int = 8,
) -> Any:
    """One titled section per head, `n_samples` images each, mistakes first; returns a matplotlib `Figure`.

    Each head kind draws its samples (`draw`): classification writes `true <class>` / `pred <class>` above the
    image, red when wrong; segmentation draws the true and the predicted mask over the image; boxes and points the
    true and the predicted objects side by side; multi-label the true classes above the predicted ones with scores.
    """
    figure_class = require("matplotlib.figure", "plots").Figure
    sections = [(head, head.order()[:n_samples]) for head in predictions]
    rows = [_section_shape(head, len(indices), columns)[0] for head, indices in sections]
    figure = figure_class(figsize=(1.6 * columns, 1.9 * max(1, sum(rows)) + 0.6 * len(sections)), layout="constrained")
    subfigures = figure.subfigures(max(1, len(sections)), 1, squeeze=False, height_ratios=[max(1, row) for row in rows] or None)
    for subfigure, (head, indices) in zip(subfigures[:, 0], sections, strict=False):
        errors = head.errors()
        n_mistakes = int((errors > 0).sum())
        subfigure.suptitle(
            f"{head.head} ({head.kind}): {n_mistakes} of {len(head.images)} test images wrong, mistakes first"
            + head.title_detail(),
            fontweight="bold",
        )
        n_rows, n_columns = _section_shape(head, len(indices), columns)
        axes_grid = subfigure.subplots(max(1, n_rows), n_columns, squeeze=False)
        for axes in axes_grid.flat:
            axes.set_axis_off()
        cells = iter(axes_grid.flat)
        for index in indices:
            head.draw(cells, int(index), float(errors[index]), class_names)
    return figure


def _section_shape(head: AnyHeadPredictions, n_samples: int, columns: int) -> tuple[int, int]:
    per_sample = int(head.cells_per_sample)
    columns -= columns % per_sample  # a sample's images stay on one row
    return -(-(n_samples * per_sample) // columns), columns


def _metric_heads(collection: BrickCollection) -> list[tuple[str, tuple[str, ...], Any]]:
    """(head, resolved input names, the metric object) for each metric brick, the first per prediction."""
    heads = []
    seen = set()
    for path, brick in collection.iter_bricks():
        if not isinstance(brick, BrickMetrics):
            continue
        names = brick.input_names
        names = list(names.values()) if isinstance(names, Mapping) else list(names)
        scope = path.split(SEPARATOR)[:-1]
        resolved = tuple(_resolve(name, scope) for name in names)
        if resolved and resolved[0] not in seen:
            seen.add(resolved[0])
            heads.append((SEPARATOR.join(scope) or path, resolved, _metric_object(brick)))
    return heads


def _metric_object(brick: BrickMetrics) -> Any:
    """The brick's metric; of a collection, the first with a matching `distance`, else the first."""
    metrics = brick.metrics
    if hasattr(metrics, "values") and callable(metrics.values):
        found = list(metrics.values())
        return next((metric for metric in found if hasattr(metric, "distance")), found[0] if found else None)
    return metrics


def _companion_outputs(collection: BrickCollection, names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """For each name, the other outputs of the brick producing it (resolved names), where scores may be found."""
    companions = {}
    for node in collection.plan().nodes:
        for name in names:
            if name in node.outputs:
                companions[name] = tuple(output for output in node.outputs if output != name)
    return companions


def _resolve(name: str, scope: list[str]) -> str:
    if not name.startswith(("./", "../")):
        return name
    base = list(scope)
    parts = name.split(SEPARATOR)
    while parts and parts[0] in (".", ".."):
        if parts.pop(0) == ".." and base:
            base.pop()
    return SEPARATOR.join([*base, *parts])


def _is_image_batch(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.ndim == 4 and value.shape[1] in (1, 3) and value.is_floating_point()


def _displayable(images: torch.Tensor) -> np.ndarray:
    """[B, C, H, W] -> [B, H, W, 3] in [0, 1], each image stretched to its own range."""
    array = images.detach().float().cpu().numpy().transpose(0, 2, 3, 1)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    low = array.min(axis=(1, 2, 3), keepdims=True)
    high = array.max(axis=(1, 2, 3), keepdims=True)
    return (array - low) / np.maximum(high - low, 1e-12)
