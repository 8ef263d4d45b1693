"""The feature-layer probe: finds the feature layers of a convolutional network by running one probe image through it.

No torchvision here: the probe records each submodule call with forward hooks and reads the spatial sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from torchbricks.errors import BrickError, did_you_mean

__all__ = ["FeatureLayer", "feature_layers", "find_feature_layers", "layers_by_name", "probe_calls"]

_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class FeatureLayer:
    """A layer whose output is a feature map: its module path, channel count and stride (input size / output size)."""

    name: str
    channels: int
    stride: int


@dataclass
class _Call:
    name: str
    module: nn.Module
    in_size: int | None
    out_size: int | None
    channels: int


def _first_spatial_size(values: Any) -> int | None:
    tensor = values[0] if isinstance(values, (tuple, list)) and values else values
    if isinstance(tensor, torch.Tensor) and tensor.ndim == 4:
        return int(tensor.shape[-2])
    return None


def probe_calls(model: nn.Module, in_channels: int, probe_size: int) -> list[_Call]:
    """Runs one probe image and records every submodule call (in the order calls finish) with its spatial sizes."""
    calls: list[_Call] = []

    def record(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            channels = int(output.shape[1]) if isinstance(output, torch.Tensor) and output.ndim == 4 else 0
            calls.append(_Call(name, module, _first_spatial_size(inputs), _first_spatial_size(output), channels))

        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in model.named_modules() if name]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, probe_size, probe_size))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return calls


def _changes_resolution(call: _Call) -> bool:
    return call.in_size is not None and call.out_size is not None and call.in_size != call.out_size


def _trunk(model: nn.Module, calls: list[_Call]) -> list[_Call]:
    """The calls along the network's trunk: children of the root, expanding any child that holds two or more
    resolution changes among its own children (a container of stages such as `features`), so every trunk
    call changes resolution at most once."""
    first_call: dict[str, _Call] = {}
    for call in calls:
        first_call.setdefault(call.name, call)

    def children_calls(prefix: str, module: nn.Module) -> list[_Call]:
        names = [f"{prefix}{name}" for name, _ in module.named_children()]
        found = [first_call[name] for name in names if name in first_call]
        return sorted(found, key=calls.index)

    def expand(prefix: str, module: nn.Module) -> list[_Call]:
        result = []
        for call in children_calls(prefix, module):
            inner = children_calls(f"{call.name}.", call.module)
            if sum(_changes_resolution(child) for child in inner) >= 2:
                result.extend(expand(f"{call.name}.", call.module))
            else:
                result.append(call)
        return result

    return expand("", model)


def find_feature_layers(model: nn.Module, in_channels: int = 3, probe_size: int = 128) -> list[FeatureLayer]:
    """The last trunk layer of each stride of a convolutional network, from fine to coarse.

    Global pooling and classifier layers are left out. The probe runs once on a zero image of
    `probe_size` x `probe_size`.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1))
        >>> find_feature_layers(net, probe_size=32)
        [FeatureLayer(name='1', channels=8, stride=2), FeatureLayer(name='2', channels=16, stride=4)]
    """
    return feature_layers(model, probe_calls(model, in_channels, probe_size), probe_size)


def feature_layers(model: nn.Module, calls: list[_Call], probe_size: int) -> list[FeatureLayer]:
    last_per_stride: dict[int, FeatureLayer] = {}
    for call in _trunk(model, calls):
        if isinstance(call.module, _GLOBAL_POOLS) or call.out_size is None or call.out_size <= 1:
            continue
        stride = _stride(call.out_size, probe_size)
        last_per_stride[stride] = FeatureLayer(call.name, call.channels, stride)
    return [last_per_stride[stride] for stride in sorted(last_per_stride)]


def _stride(out_size: int, probe_size: int) -> int:
    return max(1, round(probe_size / out_size))


def layers_by_name(model: nn.Module, names: list[str], probed: list[_Call], probe_size: int) -> list[FeatureLayer]:
    if not names:
        raise BrickError("BackboneFeatureExtractor: layer_names is empty; give at least one layer or None.")
    calls = {call.name: call for call in probed}
    modules = [name for name, _ in model.named_modules() if name]
    layers = []
    for name in names:
        call = calls.get(name)
        if call is None:
            raise BrickError(
                f"BackboneFeatureExtractor: {type(model).__name__} has no layer {name!r} that runs."
                f"{did_you_mean(name, modules)} Available: {modules[:20]}{' ...' if len(modules) > 20 else ''}"
            )
        if call.out_size is None:
            raise BrickError(
                f"BackboneFeatureExtractor: layer {name!r} of {type(model).__name__} does not output a feature map [B, C, H, W]."
            )
        layers.append(FeatureLayer(name, call.channels, _stride(call.out_size, probe_size)))
    return layers
