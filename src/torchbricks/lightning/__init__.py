"""Training with pytorch-lightning: a LightningModule for any brick collection, data modules and the main job.

Needs the `lightning` extra: `pip install "torchbricks[lightning]"`.
"""

from __future__ import annotations

from torchbricks.lightning.module import LightningBrickCollection, create_experiment_name

__all__ = ["LightningBrickCollection", "create_experiment_name"]
