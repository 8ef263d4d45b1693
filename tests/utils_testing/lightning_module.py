"""The spec imports `LightningBrickCollection` from here; it is the library's class."""

from __future__ import annotations

from torchbricks.lightning import LightningBrickCollection

__all__ = ["LightningBrickCollection"]
