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
    """A pipeline whose steps are `on_steps` while `switch` is on and `off_steps` once it is off (the resize, the last
    phase's augmentations, if any (`last_phase`), and the conversions: early stopping's last phase).

    Its `transforms` lists the steps in use now, flat, as `v2.Compose`'s does.
    """

    def __init__(
        self,
        on_steps: Sequence[Callable[..., Any]],
        off_steps: Sequence[Callable[..., Any]],
        switch: AugmentationSwitch,
        last_phase: bool,
    ) -> None:
        self.on_steps = list(on_steps)
        self.off_steps = list(off_steps)
        self.switch = switch
        self.uses_outlines = False
        self.has_last_phase_augmentations = last_phase

    @property
    def transforms(self) -> list[Callable[..., Any]]:
        return self.on_steps if self.switch.on else self.off_steps

    def __call__(self, sample: Any) -> Any:
        for step in self.transforms:
            sample = step(sample)
        return sample

    def __repr__(self) -> str:
        on = "".join(f"\n    {step!r}" for step in self.on_steps)
        off = "".join(f"\n    {step!r}" for step in self.off_steps)
        return f"{type(self).__name__}(switch={self.switch!r})\n  on:{on}\n  off:{off}"


def create_transform(
    image_size: int | Sequence[int],
    augmentations: Sequence[Callable[..., Any]] = (),
    boxes: bool = False,
    switch: AugmentationSwitch | None = None,
    last_phase_augmentations: Sequence[Callable[..., Any]] = (),
    evaluation: bool = False,
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A v2 pipeline over a sample dict: resize to `image_size` (masks by the pixel under each output pixel's centre,
    `ResizeCentredMasks`), the `augmentations`, then a float image in [0, 1].

    With `boxes`, boxes that the augmentations made degenerate (or pushed out of the image) are dropped with
    their labels (`SanitizeBoundingBoxes`, which also drops a box the resize leaves under a pixel across: a 6 px
    object of an 800 px photograph read at 96 px). An `evaluation` pipeline (no augmentations) keeps every box: an
    object the resize makes that small is still one the metrics count, found or missed, as the file says.
    When an augmentation has `uses_outlines` (`RandomRotationTightBoxes`),
    the pipeline's `uses_outlines` is True, the box readers add the objects' outlines to its samples, and
    `BoxesFromOutlines` makes the boxes from them after the augmentations. With a `switch`, the pipeline applies
    `last_phase_augmentations` (none by default) instead of `augmentations` while it is off (`AugmentationSwitch`).

    Example:
        >>> from torchvision import tv_tensors
        >>> transform = create_transform(8)
        >>> sample = transform({"image": tv_tensors.Image(torch.full((3, 16, 16), 255, dtype=torch.uint8))})
        >>> sample["image"].shape, sample["image"].max().item()
        (torch.Size([3, 8, 8]), 1.0)
    """
    for augmentation in [*augmentations, *last_phase_augmentations]:
        if not callable(augmentation):
            raise BrickError(
                f"An augmentation must be a transform (callable), got {type(augmentation).__name__} {augmentation!r}."
            )
    if evaluation and (augmentations or last_phase_augmentations or switch is not None):
        raise BrickError("An evaluation transform (evaluation=True) takes no augmentations nor switch: it keeps every box.")
    if last_phase_augmentations and switch is None:
        raise BrickError("last_phase_augmentations need a switch (AugmentationSwitch) that says when the last phase begins.")
    uses_outlines = boxes and any(
        getattr(augmentation, "uses_outlines", False) for augmentation in [*augmentations, *last_phase_augmentations]
    )
    on_steps = _pipeline_steps(image_size, augmentations, boxes and not evaluation, uses_outlines)
    pipeline: Any = require("torchvision.transforms.v2", "vision").Compose(on_steps)
    if switch is not None and (augmentations or last_phase_augmentations):
        off_steps = _pipeline_steps(image_size, last_phase_augmentations, boxes, uses_outlines)
        pipeline = _SwitchedPipeline(on_steps, off_steps, switch, last_phase=bool(last_phase_augmentations))
    pipeline.uses_outlines = uses_outlines  # the box readers give the objects' outlines to such a pipeline
    return pipeline


def _pipeline_steps(
    image_size: int | Sequence[int], augmentations: Sequence[Callable[..., Any]], boxes: bool, uses_outlines: bool
) -> list[Any]:
    """Resize, `augmentations`, the boxes from the outlines (`uses_outlines`: the readers add them to the samples of
    either phase), a float image, degenerate boxes dropped (`boxes`)."""
    v2 = require("torchvision.transforms.v2", "vision")
    tv_tensors = require("torchvision.tv_tensors", "vision")
    from torchbricks.datasets.augmentations import BoxesFromOutlines, ResizeCentredMasks

    steps = [ResizeCentredMasks(image_size_pair(image_size), antialias=True), *augmentations]
    if uses_outlines:
        steps.append(BoxesFromOutlines())
    steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True))
    if boxes:
        steps.append(DropDegenerateBoxes())
    return steps


class DropDegenerateBoxes:
    """torchvision's `SanitizeBoundingBoxes` (boxes left without area or out of the image dropped with their labels)
    on a sample dict, with its class masks `[H, W]` kept as they are.

    `SanitizeBoundingBoxes` takes any `tv_tensors.Mask` whose first dimension equals the number of boxes for
    per-object masks `[N, H, W]` and drops the dropped boxes' rows from it: a multitask sample with as many boxes
    as its mask has rows lost rows of its class mask (a 4 x 4 mask of 4 boxes, one dropped, came out 3 x 4).
    """

    def __init__(self) -> None:
        self.sanitize = require("torchvision.transforms.v2", "vision").SanitizeBoundingBoxes(labels_getter=_labels)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        mask_type = require("torchvision.tv_tensors", "vision").Mask
        class_masks = {name: value for name, value in sample.items() if isinstance(value, mask_type) and value.ndim < 3}
        sanitized = self.sanitize({name: value for name, value in sample.items() if name not in class_masks})
        return {name: class_masks[name] if name in class_masks else sanitized[name] for name in sample}


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
