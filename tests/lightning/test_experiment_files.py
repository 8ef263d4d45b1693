"""The writers of the experiment folder: what a plain Trainer running `LightningBrickCollection` leaves there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from test_lightning_module import NUM_CLASSES, create_collection, create_loader, create_module, create_trainer

from torchbricks.lightning.experiment_files import BrickGraphWriter, BrickWeightsWriter, EpochMetricsWriter


def test_a_plain_trainer_gets_the_graph_the_metrics_files_and_the_bricks(tmp_path: Path) -> None:
    module = create_module(tmp_path)
    train = create_loader(torch.rand(8, 4), torch.randint(0, NUM_CLASSES, (8,)))
    validation = create_loader(torch.rand(6, 4), torch.tensor([0, 1, 2, 2, 1, 0]))
    trainer = create_trainer(max_epochs=2, num_sanity_val_steps=1)

    trainer.fit(module, train, validation)

    folder = module.path_experiment
    assert sorted(path.name for path in folder.iterdir()) == [
        "brick_graph.md",
        "bricks",
        "metrics_train.json",
        "metrics_validation.json",
    ]
    for stage in ("train", "validation"):
        written = json.loads((folder / f"metrics_{stage}.json").read_text())
        kept = module.epoch_metrics[stage]
        assert written["confusion_matrix"] == kept["confusion_matrix"].tolist()
        assert written["accuracy"] == pytest.approx(float(kept["accuracy"]))
    # The last epoch's values, not the sanity check's: the confusion matrix counts every validation target once.
    assert sum(map(sum, json.loads((folder / "metrics_validation.json").read_text())["confusion_matrix"])) == 6
    assert sum(map(sum, json.loads((folder / "metrics_train.json").read_text())["confusion_matrix"])) == 8


def test_fit_writes_a_graph_of_the_collection_and_bricks_that_restore_it(tmp_path: Path) -> None:
    module = create_module(tmp_path)
    loader = create_loader(torch.rand(8, 4), torch.randint(0, NUM_CLASSES, (8,)))
    trainer = create_trainer(limit_val_batches=0)

    trainer.fit(module, loader)

    graph = (module.path_experiment / "brick_graph.md").read_text()
    assert graph.startswith("```mermaid\nflowchart LR")
    assert "classify" in graph
    restored = create_collection()
    restored.load_bricks(module.path_experiment / "bricks")
    for (name, value), (_, expected) in zip(
        restored.state_dict().items(), module.brick_collection.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(value, expected, msg=name)


def test_testing_writes_every_value_of_the_stage(tmp_path: Path) -> None:
    module = create_module(tmp_path)

    create_trainer().test(module, create_loader(torch.rand(6, 4), torch.tensor([0, 1, 2, 2, 1, 0])))

    written = json.loads((module.path_experiment / "metrics_test.json").read_text())
    assert written["confusion_matrix"] == module.epoch_metrics["test"]["confusion_matrix"].tolist()
    assert sorted(path.name for path in module.path_experiment.iterdir()) == ["brick_graph.md", "metrics_test.json"]


def test_write_files_false_writes_nothing(tmp_path: Path) -> None:
    module = create_module(tmp_path, write_files=False)
    loader = create_loader(torch.rand(8, 4), torch.randint(0, NUM_CLASSES, (8,)))

    create_trainer().fit(module, loader, loader)

    assert not module.path_experiment.exists()
    assert "train" in module.epoch_metrics  # computed all the same


def test_a_writer_given_to_the_trainer_is_used_instead_of_the_modules(tmp_path: Path) -> None:
    class GraphOnce(BrickGraphWriter):
        calls = 0

        def _write(self, trainer: Any, pl_module: Any) -> None:
            GraphOnce.calls += 1

    module = create_module(tmp_path)
    loader = create_loader(torch.rand(8, 4), torch.randint(0, NUM_CLASSES, (8,)))
    trainer = create_trainer(callbacks=[GraphOnce()])

    trainer.fit(module, loader, loader)
    trainer.test(module, loader)

    kinds = [type(callback) for callback in trainer.callbacks]
    assert [kinds.count(kind) for kind in (GraphOnce, BrickGraphWriter, EpochMetricsWriter, BrickWeightsWriter)] == [1, 0, 1, 1]
    assert GraphOnce.calls == 2  # fit and test started
    assert not (module.path_experiment / "brick_graph.md").exists()
    assert (module.path_experiment / "metrics_test.json").is_file()


def test_a_failed_metrics_write_leaves_the_previous_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = create_module(tmp_path)
    loader = create_loader(torch.rand(6, 4), torch.tensor([0, 1, 2, 2, 1, 0]))
    create_trainer().test(module, loader)
    written = (module.path_experiment / "metrics_test.json").read_text()
    write_text = Path.write_text

    def write_half_then_fail(path: Path, text: str, *args: Any, **kwargs: Any) -> int:
        if ".json" not in path.name:
            return write_text(path, text, *args, **kwargs)
        write_text(path, text[: len(text) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        create_trainer().test(module, loader)

    assert (module.path_experiment / "metrics_test.json").read_text() == written
    assert sorted(path.name for path in module.path_experiment.iterdir()) == ["brick_graph.md", "metrics_test.json"]
