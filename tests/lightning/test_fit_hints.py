"""The hint `torchbricks train` prints when a classifier never fit its own training images."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchbricks.lightning.fit_hints import MIN_EPOCHS, fit_hints

NAMES = ["rectangle", "square", "tilted_square"]


def _history(accuracies: list[float], head: str = "classification") -> list[dict[str, float]]:
    return [{"epoch": epoch, f"train/{head}/accuracy": value, "train/loss": 1.0} for epoch, value in enumerate(accuracies)]


def test_a_classifier_stuck_near_chance_gets_the_hint_naming_the_turns_and_time() -> None:
    stuck = _history([0.30, 0.31, 0.39, 0.38, 0.38, 0.39, 0.38, 0.36, 0.37, 0.42, 0.38, 0.39, 0.43, 0.53, 0.46])  # tilted

    (hint,) = fit_hints(stuck, NAMES, ["classification"])

    assert hint.startswith("The classification head never fit its own training images: 0.530 accuracy at best in 15 epochs")
    assert "(chance 0.333;" in hint
    assert "data.augmentations.1.degrees=0" in hint
    assert "trainer.max_time" in hint


@pytest.mark.parametrize(
    ("accuracies", "names", "heads"),
    [
        ([0.38, 0.53, 0.73, 0.82, 0.83, 0.84, 0.86, 0.88, 0.91, 0.93, 0.95], NAMES, ["classification"]),  # fits
        ([0.3] * (MIN_EPOCHS - 1), NAMES, ["classification"]),  # a short run: meant to be short
        ([0.3] * MIN_EPOCHS, NAMES, []),  # no classification head (multilabel accuracy is not judged)
        ([0.65] * MIN_EPOCHS, [*NAMES, "circle", "star"], ["classification"]),  # past 0.6, halfway for five classes
    ],
)
def test_no_hint_where_the_classifier_fit_or_the_run_was_short(
    accuracies: list[float], names: list[str], heads: list[str]
) -> None:
    assert fit_hints(_history(accuracies), names, heads) == []


@pytest.mark.slow
def test_torchbricks_train_prints_the_hint_when_the_labels_cannot_be_learned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    from PIL import Image

    from torchbricks.__main__ import main

    root = tmp_path / "noise"  # pictures of noise in class folders drawn at random: nothing tells the classes apart
    generator = np.random.default_rng(0)
    for split, count in (("train", 96), ("val", 24)):
        for index in range(count):
            folder = root / split / str(generator.choice(["a", "b", "c"]))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(generator.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    arguments = [f"data.root={root}", f"experiment.path_experiments={tmp_path}", "experiment.name=run", "data.image_size=32"]

    assert (
        main(["train", "task=classification", *arguments, f"trainer.max_epochs={MIN_EPOCHS}", "early_stopping.patience=null"])
        == 0
    )

    printed = capsys.readouterr().out
    assert "Hint: The classification head never fit its own training images" in printed
