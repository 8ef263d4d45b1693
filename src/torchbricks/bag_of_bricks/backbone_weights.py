"""Pretrained weights from a local file for a backbone feature extractor, without a network.

`create_task_backbone(name, num_scales, weights=PATH)` (the `model.weights` of the packaged task configs) reads
a state dict with `read_state_dict` and loads it with `load_backbone_weights`. Accepted:

- a state dict of the whole classification network, as torchvision saves it (`torch.save(resnet18().state_dict(), p)`)
  or as timm does for the architectures whose names match torchvision's (ResNets); a training checkpoint holding
  it under `state_dict` or `model`, with DDP's `module.` prefixes, is unwrapped;
- a torchbricks experiment's `bricks/` folder (its `backbone.pt` or `backbone.safetensors` is read) or that file.

The extractor keeps the network's layers up to its coarsest returned scale; the weights of the layers it drops
(the classifier, `fc.*` of a torchvision ResNet) are expected and unused. Every kept weight must be in the file
with its shape, and the file must hold no weight the network does not have: otherwise the file is of another
architecture, and `CheckpointError` lists the missing and unexpected weights. Files are read without executing
code (weights-only `torch.load`, or safetensors).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import torch
from torch import nn

from torchbricks._checkpoint import unreadable_reason
from torchbricks._extras import require
from torchbricks.errors import CheckpointError, CheckpointNotFoundError, MissingExtraError

__all__ = ["WEIGHT_FILE_SUFFIXES", "is_weights_path", "load_backbone_weights", "read_state_dict"]

WEIGHT_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
"""Suffixes that make a `weights` value a file rather than the name of torchvision weights."""

_BRICK_FILES = ("backbone.pt", "backbone.safetensors")
_WRAPPERS = ("state_dict", "model", "module")
_SHOWN = 4


def is_weights_path(weights: str | Path) -> bool:
    """Whether `weights` names a local file or folder (a path separator, a weights suffix, or an existing path)
    rather than torchvision weights (`"DEFAULT"`, `"IMAGENET1K_V1"`).

    Example:
        >>> is_weights_path("DEFAULT"), is_weights_path("resnet18.pt"), is_weights_path("runs/exp/bricks")
        (False, True, True)
    """
    text = str(weights)
    return isinstance(weights, Path) or "/" in text or "\\" in text or text.endswith(WEIGHT_FILE_SUFFIXES) or Path(text).exists()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, or of `backbone.pt` in a torchbricks `bricks/` folder, on the CPU.

    A training checkpoint's `state_dict`/`model` entry is unwrapped and DDP's `module.` prefixes are removed.

    Raises:
        CheckpointNotFoundError: The file or folder does not exist, or the folder has no backbone file.
        CheckpointError: The file cannot be read or holds no state dict.
    """
    file = Path(path)
    if not file.exists():
        raise CheckpointNotFoundError(f"The weights file {str(file)!r} does not exist.")
    if file.is_dir():
        found = [file / name for name in _BRICK_FILES if (file / name).is_file()]
        if not found:
            raise CheckpointNotFoundError(
                f"The folder {str(file)!r} has no {' or '.join(_BRICK_FILES)}; give a torchbricks experiment's bricks/ "
                "folder or a weights file."
            )
        file = found[0]
    try:
        if file.suffix == ".safetensors":
            state: object = dict(require("safetensors.torch", "safetensors").load_file(str(file), device="cpu"))
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except MissingExtraError:
        raise
    except Exception as error:
        raise CheckpointError(f"Cannot read the weights file {str(file)!r}: {unreadable_reason(error, file)}") from error
    for wrapper in _WRAPPERS:  # training checkpoints keep the weights under one of these keys
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    items = state.items() if isinstance(state, Mapping) else []
    tensors = {str(key): value for key, value in items if isinstance(value, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"The weights file {str(file)!r} holds a {type(state).__name__} without tensors, not a state dict.")
    if all(key.startswith("module.") for key in tensors):
        tensors = {key.removeprefix("module."): value for key, value in tensors.items()}
    return tensors


def load_backbone_weights(
    extractor: nn.Module,
    state: Mapping[str, torch.Tensor],
    network_keys: Collection[str],
    source: str = "The weights",
    backbone: str = "the backbone",
) -> None:
    """Loads the state dict of a whole network (or of a torchbricks backbone brick) into `extractor`.

    Args:
        extractor: A `BackboneFeatureExtractor` of the network (its weights are `extractor.<network key>`).
        state: The tensors to load; see the module docstring for the key forms accepted.
        network_keys: The state-dict keys of the whole network the extractor was cut from; its weights that
            the extractor dropped (the classifier) are left unused.
        source: How to name the weights in errors (the file).
        backbone: How to name the backbone in errors.

    Raises:
        CheckpointError: Weights are missing, unexpected or of another shape; nothing is loaded.
    """
    target = extractor.state_dict()
    network = set(network_keys)
    mapped: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    reshaped: list[str] = []
    reshaped_names: set[str] = set()
    for key, value in state.items():
        name = next((candidate for candidate in _candidates(key) if candidate in target), None)
        if name is None:
            if _network_key(key) not in network:
                unexpected.append(key)
            continue
        if value.shape != target[name].shape:
            reshaped.append(f"{_shown(name)} {list(value.shape)} (expected {list(target[name].shape)})")
            reshaped_names.add(name)
            continue
        mapped[name] = value
    missing = [_shown(name) for name in target if name not in mapped and name not in reshaped_names]
    if missing or unexpected or reshaped:
        problems = [
            _listed(f"of its {len(target)} weights are missing", missing),
            _listed("are unexpected", unexpected),
            _listed("have another shape", reshaped),
        ]
        raise CheckpointError(
            f"{source} do not fit {backbone}: " + "; ".join(problem for problem in problems if problem) + ". "
            "Expected the state dict of the same architecture (torchvision or timm keys) or a torchbricks experiment's "
            "bricks/ folder or bricks/backbone.pt."
        )
    extractor.load_state_dict(mapped, strict=True)


def _candidates(key: str) -> tuple[str, ...]:
    """Where a key of each accepted form lands in the extractor's state dict."""
    return (key, f"extractor.{key}", key.removeprefix("model."))


def _network_key(key: str) -> str:
    return key.removeprefix("model.").removeprefix("extractor.")


def _shown(name: str) -> str:
    return name.removeprefix("extractor.")


def _listed(what: str, keys: list[str]) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:_SHOWN]) + (", ..." if len(keys) > _SHOWN else "")
    return f"{len(keys)} {what} ({shown})"
