"""The packaged head configs (`configs/head/<name>.yaml`) written out from the head kinds' descriptions.

The YAML files are what Hydra composes (`+head@model.bricks.NAME=<name>`, a brick's argument overridden from the
command line); each is `TaskHead.config(name)` of the kind that declares it, so a test checks the files against
the kinds and `python -m torchbricks.heads` (`write_head_configs`) rewrites them after a kind changes.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from torchbricks._extras import require
from torchbricks._files import write_text
from torchbricks.errors import BrickError, did_you_mean
from torchbricks.heads._registry import TaskHead, get_head, list_heads

__all__ = ["HEAD_CONFIG_FOLDER", "head_config_text", "packaged_head_configs", "write_head_configs"]

HEAD_CONFIG_FOLDER = Path(__file__).parent.parent / "configs" / "head"


def packaged_head_configs() -> dict[str, type[TaskHead]]:
    """Packaged config name -> the head kind declaring it."""
    return {name: get_head(kind) for kind in list_heads() for name in get_head(kind).packaged_configs}


def head_config_text(name: str) -> str:
    """The text of `configs/head/<name>.yaml`: a comment naming the kind and its bricks, then the bricks.

    Raises:
        BrickError: No kind declares a packaged config `name`.
    """
    yaml = require("yaml", "hydra")
    configs = packaged_head_configs()
    if name not in configs:
        available = sorted(configs)
        raise BrickError(
            f"No head kind declares a packaged config {name!r}. Available: {available}.{did_you_mean(name, available)}"
        )
    head = configs[name]
    summary = " ".join(line.strip() for line in (inspect.getdoc(head) or "").splitlines())
    header = [
        f"# Generated from torchbricks.heads.{head.__module__.rpartition('.')[2]}.{head.__qualname__} (kind {head.kind!r}):",
        "# edit the kind, then run `python -m torchbricks.heads`. Names starting with ./ are relative to the head.",
        *_wrapped(summary),
    ]
    body = yaml.safe_dump(head.config(name), sort_keys=False, width=120, default_flow_style=False)
    return "\n".join(header) + "\n" + body


def write_head_configs(folder: Path | str = HEAD_CONFIG_FOLDER) -> list[Path]:
    """Writes every packaged head config into `folder` (atomically); returns the files written."""
    written = []
    for name in sorted(packaged_head_configs()):
        path = Path(folder) / f"{name}.yaml"
        write_text(path, head_config_text(name))
        written.append(path)
    return written


def _wrapped(text: str, width: int = 116) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(f"# {line}")
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, f"# {line}"] if line else lines
