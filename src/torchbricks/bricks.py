"""Bricks: a module, loss, metric or callable wrapped with the names it reads and writes and the tags it runs in.

The module bricks are defined here; the base (`BrickInterface`) and the accumulating bricks (metrics, tensor caches)
are defined beside it, in `torchbricks._brick_interface` and `torchbricks._accumulating_bricks`, and imported here,
their public path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from torchbricks._accumulating_bricks import BrickAccumulator, BrickMetrics, BrickMetricSingle, BrickTensorCache
from torchbricks._brick_interface import (
    BrickInterface,
    InputNames,
    LossOutputNames,
    NamesCopy,
    OutputNames,
    check_call_fits,
    names_list,
)
from torchbricks.errors import BrickError, BrickNameError, did_you_mean
from torchbricks.tags import LOSS, METRIC, MODEL, STAGE_TAGS, VISUALIZATION, Stage, TagsLike

__all__ = [
    "LOSS",
    "METRIC",
    "MODEL",
    "STAGE_TAGS",
    "VISUALIZATION",
    "BrickAccumulator",
    "BrickInterface",
    "BrickLoss",
    "BrickMetricSingle",
    "BrickMetrics",
    "BrickModule",
    "BrickNotTrainable",
    "BrickTensorCache",
    "BrickTrainable",
    "Stage",
]

ModuleLike = nn.Module | Callable[..., Any]
"""What a module brick wraps: an `nn.Module`, or any callable."""


class BrickModule(BrickInterface):
    """A brick around an `nn.Module` (or any callable).

    Args:
        model: The module to run.
        input_names: See `BrickInterface`.
        output_names: See `BrickInterface`.
        tags: See `BrickInterface`; MODEL by default.
        loss_output_names: The outputs that are losses (returned by `BrickCollection.extract_losses`): a list of
            output names, `"all"` or `"none"`. A loss must be a single value; a call raises `BrickOutputError`
            naming the brick and the shape otherwise (e.g. for `nn.MSELoss(reduction="none")`).
        calculate_gradients: When False the module runs under `torch.no_grad()`.
        trainable: When False the module's parameters are frozen (`requires_grad=False`) and the module
            stays in eval mode, so batch-norm statistics do not drift either. Assigning `brick.trainable` later
            freezes or thaws it the same way.
    """

    def __init__(
        self,
        model: ModuleLike,
        input_names: InputNames,
        output_names: OutputNames | None,
        tags: TagsLike | None = None,
        loss_output_names: LossOutputNames = "none",
        calculate_gradients: bool = True,
        trainable: bool = True,
    ) -> None:
        super().__init__(input_names=input_names, output_names=output_names, tags=tags)
        if not callable(model):
            raise BrickError(f"{type(self).__name__}: model must be callable (an nn.Module), got {type(model).__name__}.")
        self.model = model
        self._check_wiring()
        self.calculate_gradients = calculate_gradients
        self._trainable = trainable
        self._loss_output_names = self._parse_losses(loss_output_names)
        self._freeze_if_not_trainable()

    def _parse_losses(self, loss_output_names: LossOutputNames) -> list[str]:
        if loss_output_names == "all":
            loss_output_names = self._output_names
        elif loss_output_names == "none":
            loss_output_names = []
        losses = names_list(loss_output_names, "loss_output_names", type(self).__name__)
        unknown = [name for name in losses if name not in self._output_names]
        if unknown:
            raise BrickNameError(
                f"{type(self).__name__}({self.describe()}): loss_output_names {unknown} are not among "
                f"output_names {self._output_names}.{did_you_mean(unknown[0], self._output_names)}"
            )
        return losses

    plan_attributes: ClassVar[frozenset[str]] = frozenset({"model", "calculate_gradients"})

    def _check_wiring(self) -> None:
        self._check_model(self.model)

    def _check_model(self, model: Any) -> None:
        """Raises `BrickError` unless `model` is callable with the brick's inputs."""
        if not callable(model):
            raise BrickError(f"{type(self).__name__}: model must be callable (an nn.Module), got {type(model).__name__}.")
        check_call_fits(model.forward if isinstance(model, nn.Module) else model, self, "its module")

    def __setattr__(self, name: str, value: Any) -> None:
        """Assigning `model` (`brick.model = ...`) checks the new module as the constructor does (callable with the
        brick's inputs) before it replaces the old one: a module that does not fit is refused, naming the brick, and
        nothing changes. (A module swapped in by `brick._modules["model"] = ...`, as in-place quantization does, is
        not checked.)"""
        if name == "model" and "_loss_output_names" in self.__dict__:
            self._check_model(value)
        super().__setattr__(name, value)

    def _derived_wiring(self, changes: dict[str, Any]) -> dict[str, Any]:
        """New output names carry the losses along: by name when they hold every loss, else (renamed) by position."""
        outputs = changes.get("_output_names")
        losses = self._loss_output_names
        if outputs is None or all(name in outputs for name in losses):
            return changes
        positions = [self._output_names.index(name) for name in losses]
        if len(outputs) != len(self._output_names):
            raise BrickNameError(
                f"{type(self).__name__}({self.describe()}): the new output_names {outputs} hold none of the loss outputs "
                f"{[name for name in losses if name not in outputs]} and have another count than {self._output_names}, so "
                "no loss output can be told by its position. Keep the loss names, or rename the outputs one for one."
            )
        return {**changes, "_loss_output_names": [outputs[position] for position in positions]}

    def _module_replaced(self, name: str) -> None:
        super()._module_replaced(name)
        if name == "model":  # a module swapped into a frozen brick is frozen too
            self._freeze_if_not_trainable()

    def _freeze_if_not_trainable(self) -> None:
        model = self.__dict__.get("_modules", {}).get("model")
        if not self.__dict__.get("_trainable", True) and isinstance(model, nn.Module):
            model.requires_grad_(False)
            model.eval()

    @property
    def trainable(self) -> bool:
        """Whether the module trains. Assigning False freezes it as `trainable=False` does (parameters
        `requires_grad=False`, the module in eval mode); assigning True makes every parameter of the module trainable
        again and lets it follow the brick's train/eval mode."""
        return self._trainable

    @trainable.setter
    def trainable(self, trainable: bool) -> None:
        self._trainable = bool(trainable)
        model = self.model
        if not isinstance(model, nn.Module):
            return
        if trainable:
            model.requires_grad_(True)
            model.train(self.training)
        else:
            self._freeze_if_not_trainable()

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "trainable" in state:  # pickled before `trainable` became a property
            state["_trainable"] = state.pop("trainable")
        super().__setstate__(state)

    @property
    def loss_output_names(self) -> list[str]:
        """The outputs that are losses; assigning them (a list of output names, `"all"` or `"none"`) rewires the
        brick as assigning `input_names` does."""
        return NamesCopy(self._loss_output_names, "loss_output_names")

    @loss_output_names.setter
    def loss_output_names(self, loss_output_names: LossOutputNames) -> None:
        self._rewire({"_loss_output_names": self._parse_losses(loss_output_names)})

    @property
    def loss_output_indices(self) -> list[int]:
        """The positions of the loss outputs among `output_names` (torchbricks 0.4.2's attribute, also assignable)."""
        return NamesCopy([self._output_names.index(name) for name in self._loss_output_names], "loss_output_indices")

    @loss_output_indices.setter
    def loss_output_indices(self, indices: list[int]) -> None:
        count = len(self._output_names)
        wrong = [index for index in indices if not isinstance(index, int) or not -count <= index < count]
        if wrong:
            raise BrickNameError(
                f"{type(self).__name__}({self.describe()}): loss_output_indices {wrong} are not positions among "
                f"output_names {self._output_names}."
            )
        self.loss_output_names = [self._output_names[index] for index in indices]

    def train(self, mode: bool = True) -> BrickModule:
        super().train(mode)
        if not self.trainable and isinstance(self.model, nn.Module):
            self.model.eval()
        return self

    def describe(self) -> str:
        return type(self.model).__name__

    def step_function(self) -> Callable[..., Any]:
        model = self.model
        if self.calculate_gradients:
            return model

        def run_without_gradients(*args: Any, **kwargs: Any) -> Any:
            with torch.no_grad():
                return model(*args, **kwargs)

        return run_without_gradients


class BrickTrainable(BrickModule):
    """A brick whose module is trained. Tags default to MODEL.

    The positional order is torchbricks 0.4.2's: `BrickTrainable(model, input_names, output_names,
    loss_output_names, tags)`. See `BrickModule` for the arguments.
    """

    def __init__(
        self,
        model: ModuleLike,
        input_names: InputNames,
        output_names: OutputNames | None,
        loss_output_names: LossOutputNames = "none",
        tags: TagsLike | None = None,
        calculate_gradients: bool = True,
    ) -> None:
        super().__init__(model, input_names, output_names, tags, loss_output_names, calculate_gradients, trainable=True)


class BrickNotTrainable(BrickModule):
    """A brick whose module is frozen: parameters never change and the module stays in eval mode.

    Gradients still flow through it to trainable bricks before it, unless `calculate_gradients=False`.
    """

    def __init__(
        self,
        model: ModuleLike,
        input_names: InputNames,
        output_names: OutputNames | None,
        tags: TagsLike | None = None,
        calculate_gradients: bool = True,
    ) -> None:
        super().__init__(model, input_names, output_names, tags, (), calculate_gradients, trainable=False)


class BrickLoss(BrickModule):
    """A brick computing losses. Tags default to LOSS; every output is a loss unless `loss_output_names` says.

    The positional order is torchbricks 0.4.2's: `BrickLoss(model, input_names, output_names, loss_output_names,
    tags)`. See `BrickModule` for the arguments.
    """

    default_tags: ClassVar[frozenset[str]] = frozenset({LOSS})

    def __init__(
        self,
        model: ModuleLike,
        input_names: InputNames,
        output_names: OutputNames,
        loss_output_names: LossOutputNames = "all",
        tags: TagsLike | None = None,
    ) -> None:
        super().__init__(model, input_names, output_names, tags, loss_output_names, calculate_gradients=True, trainable=True)
