"""Sample transforms built from `torchvision.transforms.v2` (boxes and masks stay aligned with the image) and a
collate function that pads per-image box lists so batches stack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from torchbricks._extras import require
from torchbricks.errors import BrickError

__all__ = ["AugmentationSwitch", "collate_padded", "create_transform", "image_size_pair"]


def image_size_pair(image_size: int | Sequence[int]) -> tuple[int, int]:
    """`(height, width)` from one side or a pair.

    Example:
        >>> image_size_pair(96), image_size_pair([64, 80])
        ((96, 96), (64, 80))
    """
    sizes = [image_size] if isinstance(image_size, int) else list(image_size)
    if len(sizes) not in (1, 2) or not all(isinstance(size, int) and size > 0 for size in sizes):
        raise BrickError(f"image_size must be a positive int or [height, width], got {image_size!r}.")
    return (sizes[0], sizes[-1])


class AugmentationSwitch:
    """Turns a pipeline's augmentations off, in the loader processes too: its flag lives in shared memory, so a
    switch made in the training process reaches loader processes that are already running (persistent ones).

    Example:
        >>> switch = AugmentationSwitch()
        >>> switch.on
        True
        >>> switch.turn_off()
        >>> switch.on
        False
    """

    def __init__(self) -> None:
        self._off = torch.zeros((), dtype=torch.uint8).share_memory_()

    @property
    def on(self) -> bool:
        return not bool(self._off)

    def turn_off(self) -> None:
        self._off.fill_(1)

    def turn_on(self) -> None:
        self._off.fill_(0)

    def __repr__(self) -> str:
        return f"AugmentationSwitch(on={self.on})"


class _SwitchedPipeline:
    """A pipeline of steps whose augmentations (the steps `augmentations`, a slice) are skipped while `switch` is off.

    Its `transforms` lists every step, flat, as `v2.Compose`'s does.
    """

    def __init__(self, transforms: Sequence[Callable[..., Any]], augmentations: slice, switch: AugmentationSwitch) -> None:
        self.transforms = list(transforms)
        self.augmentations = augmentations
        self.switch = switch
        self.uses_outlines = False

    def __call__(self, sample: Any) -> Any:
        off = not self.switch.on
        for index, step in enumerate(self.transforms):
            if not (off and self.augmentations.start <= index < self.augmentations.stop):
                sample = step(sample)
        return sample

    def __repr__(self) -> str:
        steps = "".join(f"\n    {step!r}" for step in self.transforms)
        return f"{type(self).__name__}(augmentations={self.augmentations}, switch={self.switch!r}){steps}"


def create_transform(
    image_size: int | Sequence[int],
    augmentations: Sequence[Callable[..., Any]] = (),
    boxes: bool = False,
    switch: AugmentationSwitch | None = None,
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A v2 pipeline over a sample dict: resize to `image_size`, the `augmentations`, then a float image in [0, 1].

    With `boxes`, boxes that the augmentations made degenerate (or pushed out of the image) are dropped with
    their labels (`SanitizeBoundingBoxes`). When an augmentation has `uses_outlines` (`RandomRotationTightBoxes`),
    the pipeline's `uses_outlines` is True, the box readers add the objects' outlines to its samples, and
    `BoxesFromOutlines` makes the boxes from them after the augmentations. With a `switch`, the augmentations are
    skipped while it is off (`AugmentationSwitch`).

    Example:
        >>> from torchvision import tv_tensors
        >>> transform = create_transform(8)
        >>> sample = transform({"image": tv_tensors.Image(torch.full((3, 16, 16), 255, dtype=torch.uint8))})
        >>> sample["image"].shape, sample["image"].max().item()
        (torch.Size([3, 8, 8]), 1.0)
    """
    v2 = require("torchvision.transforms.v2", "vision")
    tv_tensors = require("torchvision.tv_tensors", "vision")
    for augmentation in augmentations:
        if not callable(augmentation):
            raise BrickError(
                f"An augmentation must be a transform (callable), got {type(augmentation).__name__} {augmentation!r}."
            )
    uses_outlines = boxes and any(getattr(augmentation, "uses_outlines", False) for augmentation in augmentations)
    steps = [v2.Resize(image_size_pair(image_size), antialias=True), *augmentations]
    if uses_outlines:
        from torchbricks.datasets.augmentations import BoxesFromOutlines

        steps.append(BoxesFromOutlines())
    steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True))
    if boxes:
        steps.append(v2.SanitizeBoundingBoxes(labels_getter=_labels))
    pipeline: Any = v2.Compose(steps)
    if switch is not None and augmentations:
        pipeline = _SwitchedPipeline(steps, slice(1, 1 + len(augmentations)), switch)
    pipeline.uses_outlines = uses_outlines  # the box readers give the objects' outlines to such a pipeline
    return pipeline


def _labels(sample: Any) -> Any:
    return sample["labels"]  # a named function, not a lambda: loader processes started by spawn pickle it


def collate_padded(samples: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stacks named samples; tensors whose first dimension differs between samples (box lists) are padded to the
    longest, integer tensors with -1 (a padding label) and float tensors with 0.

    Example:
        >>> batch = collate_padded([{"labels": torch.tensor([1, 2])}, {"labels": torch.tensor([3])}])
        >>> batch["labels"].tolist()
        [[1, 2], [3, -1]]
    """
    batch: dict[str, torch.Tensor] = {}
    for name in samples[0]:
        values = [sample[name] for sample in samples]
        if all(value.shape == values[0].shape for value in values):
            batch[name] = torch.stack(values)
            continue
        longest = max(1, *(len(value) for value in values))
        fill = 0.0 if values[0].is_floating_point() else -1
        padded = values[0].new_full((len(values), longest, *values[0].shape[1:]), fill)
        for index, value in enumerate(values):
            padded[index, : len(value)] = value
        batch[name] = padded
    return batch
