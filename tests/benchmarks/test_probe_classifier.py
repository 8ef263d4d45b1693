from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

from probe_classifier import ProbedClassifier, main


def _brightness_folder(root: Path) -> Path:
    """Two classes a classifier learns in a few epochs: dark and bright noisy images."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 24), ("val", 8)):
        for name, level in (("bright", 200), ("dark", 40)):
            (root / split / name).mkdir(parents=True)
            for index in range(count):
                pixels = np.clip(level + rng.normal(0, 20, size=(32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{index}.png")
    return root


@pytest.mark.parametrize("pool", ["avg", "max", "avgmax", "multiscale"])
def test_every_pooling_gives_one_logit_per_class(pool: str) -> None:
    assert ProbedClassifier(num_classes=5, pool=pool)(torch.rand(2, 3, 64, 64)).shape == (2, 5)


def test_an_unknown_pooling_is_refused() -> None:
    with pytest.raises(ValueError, match="pool must be avg, max, avgmax or multiscale, got 'mean'"):
        ProbedClassifier(num_classes=2, pool="mean")


@pytest.mark.parametrize(("optimizer", "lr", "mixup"), [("adamw", "3e-3", "0"), ("sgd", "0.05", "0"), ("adamw", "3e-3", "0.4")])
def test_the_probe_learns_separable_classes_and_reports_every_epoch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], optimizer: str, lr: str, mixup: str
) -> None:
    torch.set_num_threads(1)
    root = str(_brightness_folder(tmp_path))
    arguments = ["--root", root, "--seconds", "4", "--augmentations", "none", "--optimizer", optimizer, "--lr", lr]
    records = main([*arguments, "--mixup", mixup])

    assert [record["epoch"] for record in records] == list(range(1, len(records) + 1))
    assert records[-1]["val_accuracy"] == 1.0
    assert records[-1]["train_accuracy"] > records[0]["train_accuracy"] or records[0]["train_accuracy"] == 1.0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(records)
    assert lines[-1].startswith(f"epoch {len(records)} ")
    assert lines[-1].endswith("val 1.000")
