from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import experiment_trained_in
from torch import nn

from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickTrainable
from torchbricks.configuration import compose_config
from torchbricks.errors import CheckpointError, ConfigError
from torchbricks.lightning.main_job import run_main_job
from torchbricks.tags import Stage
from torchbricks.trained_experiment import load_experiment, use_trained_memory_order


@pytest.mark.slow
def test_load_experiment_rebuilds_the_trained_model_with_its_weights(tmp_path: Path) -> None:
    config = compose_config(
        [
            f"experiment.path_experiments={tmp_path}",
            "experiment.name=run",
            "trainer.max_epochs=1",
            "export_onnx=false",
            "n_visualized=0",
            "trainer.enable_progress_bar=false",
        ]
    )
    result = run_main_job(config)
    loaded = load_experiment(result.path_experiment)

    description = json.loads((result.path_experiment / "experiment.json").read_text())
    assert description["class_names"] == loaded.class_names
    assert loaded.class_names == [str(digit) for digit in range(10)]
    raw = torch.rand(3, 1, 8, 8)
    trained = result.module.brick_collection.eval()
    with torch.no_grad():
        expected = trained(named_inputs={"raw": raw}, tags=Stage.EXPORT)["head/logits"]
        actual = loaded.collection(named_inputs={"raw": raw}, tags=Stage.EXPORT)["head/logits"]
    torch.testing.assert_close(actual, expected)


def test_load_experiment_refuses_a_folder_that_is_not_an_experiment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not a trained experiment folder: it lacks \['resolved_config.yaml'"):
        load_experiment(tmp_path)


@pytest.mark.parametrize(
    ("config", "channels_last"), [({"channels_last": True}, True), ({"channels_last": False}, False), (None, False)]
)
def test_the_collection_takes_the_memory_order_its_job_trained_with(config: dict | None, channels_last: bool) -> None:
    convolution = nn.Conv2d(3, 4, kernel_size=3)
    collection = BrickCollection({"conv": BrickTrainable(convolution, input_names=["raw"], output_names=["features"])})

    use_trained_memory_order(collection, config)

    assert convolution.weight.is_contiguous(memory_format=torch.channels_last) is channels_last


def test_load_experiment_does_not_read_the_weights_training_started_from(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from torchbricks.bag_of_bricks.compact_cnn import CompactCNN
    from torchbricks.configuration import create_brick_collection

    start = tmp_path / "start.pt"
    backbone = {
        "_target_": "torchbricks.bricks.BrickTrainable",
        "model": {"_target_": "torchbricks.bag_of_bricks.compact_cnn.create_task_backbone", "weights": str(start)},
        "input_names": ["raw"],
        "output_names": ["features"],
    }
    config = OmegaConf.create({"model": {"bricks": {"backbone": backbone}}})
    torch.save(CompactCNN().state_dict(), start)  # a state dict of the architecture, as a user gives one
    trained = create_brick_collection(config, "model.bricks").eval()
    folder = tmp_path / "experiment"
    trained.save_bricks(folder / "bricks")
    OmegaConf.save(config, folder / "resolved_config.yaml")
    (folder / "experiment.json").write_text("{}")
    start.unlink()  # the file training started from is gone: the trained weights are in bricks/

    loaded = load_experiment(folder)

    raw = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.collection(named_inputs={"raw": raw})["features"], trained(named_inputs={"raw": raw})["features"]
        )
    assert loaded.config.model.bricks.backbone.model.weights == str(start)  # the experiment's config is kept as written


def test_load_experiment_refuses_bricks_without_their_weights_file_naming_them(tmp_path: Path) -> None:
    # An experiment copied without one file of bricks/: its brick was built untrained and predicted with a warning
    experiment = experiment_trained_in(tmp_path / "run", tmp_path)
    load_experiment(experiment)
    (experiment / "bricks" / "backbone.pt").unlink()

    with pytest.raises(CheckpointError, match=r"untrained ones\): Bricks \['backbone'\] have weights but no checkpoint file"):
        load_experiment(experiment)


def test_load_experiment_refuses_a_lightning_checkpoint_without_the_bricks_weights_naming_them(tmp_path: Path) -> None:
    experiment = experiment_trained_in(tmp_path / "run", tmp_path)
    shutil.rmtree(experiment / "bricks")  # a run stopped before writing bricks/: its best checkpoint is read
    (experiment / "checkpoints").mkdir()
    torch.save({"state_dict": {"brick_collection.head.weight": torch.zeros(2)}}, experiment / "checkpoints" / "best.ckpt")

    with pytest.raises(ConfigError, match=r"best.ckpt' has no trained weights for \['backbone.model.weight'"):
        load_experiment(experiment)


def _with_best_checkpoint_only(experiment: Path, state_dict: dict[str, torch.Tensor]) -> Path:
    shutil.rmtree(experiment / "bricks")  # a run stopped before writing bricks/: its best checkpoint is read
    (experiment / "checkpoints").mkdir()
    torch.save({"state_dict": state_dict}, experiment / "checkpoints" / "best.ckpt")
    return experiment / "checkpoints" / "best.ckpt"


def test_load_experiment_refuses_a_best_checkpoint_cut_short_naming_it(tmp_path: Path) -> None:
    experiment = experiment_trained_in(tmp_path / "run", tmp_path)
    weights = {
        "brick_collection.backbone.model.weight": torch.zeros(2, 2),
        "brick_collection.backbone.model.bias": torch.zeros(2),
    }
    best = _with_best_checkpoint_only(experiment, weights)
    best.write_bytes(best.read_bytes()[:-100])  # a copy that did not finish

    with pytest.raises(CheckpointError, match=r"Cannot read the training checkpoint .*best.ckpt': the file is cut short"):
        load_experiment(experiment)


def test_load_experiment_refuses_a_best_checkpoint_of_another_shape_naming_the_weight_and_the_shapes(tmp_path: Path) -> None:
    experiment = experiment_trained_in(tmp_path / "run", tmp_path)
    # the last weight is the one that differs: the others come first and would load
    weights = {
        "brick_collection.backbone.model.weight": torch.zeros(2, 2),
        "brick_collection.backbone.model.bias": torch.zeros(3),
    }
    _with_best_checkpoint_only(experiment, weights)

    with pytest.raises(
        CheckpointError, match=r"best.ckpt' do not fit .*'backbone.model.bias' has shape \[3\] there, the model expects \[2\]"
    ):
        load_experiment(experiment)


def test_only_torchbricks_factories_lose_their_initial_weights() -> None:
    from omegaconf import OmegaConf

    from torchbricks.trained_experiment import without_initial_weights

    config = OmegaConf.create(
        {
            "a": {"_target_": "torchbricks.bag_of_bricks.create_backbone", "name": "resnet18", "weights": "DEFAULT"},
            "b": [{"_target_": "torchbricks.bag_of_bricks.backbones.create_backbone_brick_from_timm", "pretrained": True}],
            "c": {"_target_": "my_project.Blend", "weights": "uniform"},
            "d": {"weights": "not/a/target"},
        }
    )

    stripped = without_initial_weights(config)

    assert stripped.a.weights is None
    assert stripped.a.name == "resnet18"
    assert stripped.b[0].pretrained is False
    assert stripped.c.weights == "uniform"
    assert stripped.d.weights == "not/a/target"
    assert config.a.weights == "DEFAULT"  # the given config is not changed


def test_an_experiment_whose_training_folder_is_gone_reads_its_relative_data_root_from_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The project folder was moved or renamed: the recorded folder is gone, the data is under the current one
    moved = tmp_path / "moved"
    (moved / "data" / "shapes").mkdir(parents=True)
    experiment = experiment_trained_in(moved / "experiments" / "run", tmp_path / "project")
    monkeypatch.chdir(moved)

    loaded = load_experiment(experiment)

    assert loaded.config.data.root == "data/shapes"
    assert loaded.unlocated_data_root is None
    (moved / "data" / "shapes").rmdir()
    unlocated = str(load_experiment(experiment).unlocated_data_root)
    assert "'data/shapes', relative to the folder `torchbricks train` ran in" in unlocated
    assert f"{str(tmp_path / 'project')!r}, which no longer exists" in unlocated
    # Where the recorded folder exists, the root is read there
    (tmp_path / "project" / "data" / "shapes").mkdir(parents=True)
    loaded = load_experiment(experiment)
    assert (loaded.config.data.root, loaded.unlocated_data_root) == (str(tmp_path / "project" / "data" / "shapes"), None)


def test_load_experiment_refuses_a_truncated_experiment_json_in_one_library_error_naming_it(tmp_path: Path) -> None:
    # json.loads' own JSONDecodeError reached the caller: `predict` and `evaluate` ended with a traceback
    experiment = experiment_trained_in(tmp_path / "run", tmp_path)
    (experiment / "experiment.json").write_text('{"working_directory": "/ho')

    with pytest.raises(ConfigError, match=r"load_experiment reads .*run/experiment.json', but it is not JSON"):
        load_experiment(experiment)


def _cut_in_half(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 2]))  # at a line's end: what remains is still YAML


def test_load_experiment_refuses_a_resolved_config_cut_short_naming_it(tmp_path: Path) -> None:
    # YAML parses a cut config into a smaller one: the error named a missing key, not the cut file
    from omegaconf import OmegaConf

    from torchbricks.trained_experiment import write_experiment_description

    experiment = experiment_trained_in(tmp_path / "run", tmp_path)
    config = OmegaConf.load(experiment / "resolved_config.yaml")
    write_experiment_description(experiment, config, object())  # as `torchbricks train` writes it
    _cut_in_half(experiment / "resolved_config.yaml")

    with pytest.raises(ConfigError, match=r"load_experiment: '.*run/resolved_config.yaml' is cut short"):
        load_experiment(experiment)


def test_load_experiment_reads_the_resolved_config_its_writer_wrote_as_the_config_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omegaconf import OmegaConf

    from torchbricks.trained_experiment import write_experiment_description

    experiment = experiment_trained_in(tmp_path / "run", tmp_path)  # written without the end line, as before it was
    config = OmegaConf.load(experiment / "resolved_config.yaml")
    before = OmegaConf.to_container(load_experiment(experiment).config)
    monkeypatch.chdir(tmp_path)  # the working directory the writer records, as the helper's
    write_experiment_description(experiment, config, object())

    assert OmegaConf.to_container(load_experiment(experiment).config) == before
