"""`torchbricks train task=multitask data.sources=[...]`: a head per separately labelled data set, from the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from torchbricks.__main__ import main
from torchbricks.configuration import compose_config
from torchbricks.datasets.shapes import write_shapes_dataset
from torchbricks.errors import ConfigError
from torchbricks.lightning.multi_source_config import expand_sources
from torchbricks.lightning.task_resolvers import register_resolvers


@pytest.fixture(scope="module")
def three_sets(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three generated sets of different images: boxes come from the first, masks from the second, classes from the third."""
    root = tmp_path_factory.mktemp("sources")
    return [write_shapes_dataset(root / f"set{seed}", num_train=8, num_val=4, image_size=64, seed=seed) for seed in (1, 2, 3)]


def sources_override(sets: list[Path]) -> str:
    return (
        f"data.sources=[{{task: detection, root: {sets[0] / 'detection'}}}, "
        f"{{task: segmentation, root: {sets[1] / 'segmentation'}}}, "
        f"{{task: classification, root: {sets[2] / 'classification'}, name: shape}}]"
    )


@pytest.mark.slow
def test_multitask_from_three_separately_labelled_sets_trains_and_tests_a_head_on_each(
    three_sets: list[Path], tmp_path: Path
) -> None:
    arguments = ["train", "task=multitask", sources_override(three_sets), "trainer.max_epochs=1", "data.image_size=64"]
    arguments += ["data.batch_size=4", "loss_balancing=dwa", "loss.class_weights=auto"]
    arguments += [f"experiment.path_experiments={tmp_path}", "experiment.name=run"]
    assert main(arguments) == 0

    folder = tmp_path / "run"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert {"detection/map_50", "segmentation/mean_iou", "shape/accuracy"} <= set(metrics["test"])
    assert metrics["onnx_max_abs_difference"] <= 1e-4  # a batch of one source through the exported model agrees
    described = json.loads((folder / "experiment.json").read_text())
    assert described["head_class_names"]["shape"] == sorted(
        path.name for path in (three_sets[2] / "classification/train").iterdir()
    )
    assert described["head_class_names"]["segmentation"][0] == "background"
    history = json.loads((folder / "history.json").read_text())
    assert "train/balancing/weights/shape/loss_ce" in history[-1]
    # best.ckpt and early stopping follow the mean of every head's main value, not the first head's.
    monitored = ["validation/detection/map_50", "validation/segmentation/mean_iou", "validation/shape/accuracy"]
    assert history[-1]["validation/monitored_mean"] == pytest.approx(sum(history[-1][name] for name in monitored) / 3)
    # The head of each source reads its own targets, and the batches of each source carry only them.
    resolved = OmegaConf.load(folder / "resolved_config.yaml")
    assert resolved.model.bricks.shape.loss.input_names == ["./logits", "shape_targets"]
    assert resolved.model.bricks.segmentation.loss.input_names == ["./logits", "segmentation_targets"]
    # Each head weighs the classes of its own source (auto: inverse frequency in that source's training split).
    assert len(resolved.model.bricks.shape.loss.model.class_weights) == len(described["head_class_names"]["shape"])
    assert len(resolved.model.bricks.segmentation.loss.model.class_weights) == len(described["head_class_names"]["segmentation"])
    assert (folder / "predictions.png").is_file()
    _predict_evaluate_and_export_name_each_heads_classes(three_sets, folder, metrics["test"])


def _predict_evaluate_and_export_name_each_heads_classes(sets: list[Path], folder: Path, tested: dict[str, object]) -> None:
    """After training on several sources: `evaluate` gives the test values; `predict` and `export` name each head's
    classes (and the COCO ids of the boxes) from its own data set."""
    assert main(["evaluate", str(folder), "--out", str(folder / "evaluation.json")]) == 0
    evaluated = json.loads((folder / "evaluation.json").read_text())["metrics"]
    for name in ("detection/map_50", "segmentation/mean_iou", "shape/accuracy"):
        assert evaluated[name] == pytest.approx(tested[name], abs=1e-6), name
    coco = json.loads((sets[0] / "detection" / "train.json").read_text())
    ids = [category["id"] for category in sorted(coco["categories"], key=lambda category: category["id"])]
    shape_names = sorted(path.name for path in (sets[2] / "classification/train").iterdir())
    image = next((sets[0] / "detection" / "images" / "val").iterdir())
    out = folder / "predicted"
    assert main(["predict", str(folder), str(image), "--out", str(out), "--pictures", "none"]) == 0
    (row,) = csv.DictReader((out / "predictions.csv").open())
    assert row["shape/class"] in shape_names
    boxes = json.loads((out / "detection_predictions.json").read_text())  # after one epoch, maybe none
    names = [category["name"] for category in sorted(coco["categories"], key=lambda category: category["id"])]
    assert all(names[ids.index(box["category_id"])] == box["category_name"] for box in boxes)
    assert json.loads((folder / "experiment.json").read_text())["head_category_ids"] == {"detection": ids}
    assert main(["export", str(folder)]) == 0
    heads = json.loads((folder / "deploy.onnx.json").read_text())["heads"]
    assert heads["detection"]["class_names"] == names
    assert heads["detection"]["category_ids"] == ids
    assert heads["shape"]["class_names"] == shape_names


def test_a_source_of_an_unknown_task_names_the_key_and_the_close_match(three_sets: list[Path]) -> None:
    register_resolvers()
    config = compose_config(["task=multitask", f"data.sources=[{{task: detections, root: {three_sets[0]}}}]"])
    with pytest.raises(ConfigError, match=r"'data.sources\[0\].task' is 'detections'.*Did you mean 'detection'"):
        expand_sources(config)


def test_two_sources_labelling_one_head_are_refused(three_sets: list[Path]) -> None:
    register_resolvers()
    root = three_sets[0] / "classification"
    config = compose_config(
        ["task=multitask", f"data.sources=[{{task: classification, root: {root}}}, {{task: classification, root: {root}}}]"]
    )
    with pytest.raises(ConfigError, match=r"two sources label head 'classification'; give one of them another `name`"):
        expand_sources(config)


def test_a_source_named_as_a_shared_brick_is_refused_instead_of_replacing_it(three_sets: list[Path]) -> None:
    register_resolvers()
    root = three_sets[2] / "classification"
    config = compose_config(["task=multitask", f"data.sources=[{{task: classification, root: {root}, name: backbone}}]"])

    with pytest.raises(ConfigError, match=r"'data.sources\[0\]' names its head 'backbone', the name of the model's shared brick"):
        expand_sources(config)


def test_without_sources_the_multitask_config_reads_one_coco_root(three_sets: list[Path]) -> None:
    config = compose_config(["task=multitask", f"data.root={three_sets[0] / 'detection'}"])
    expanded = expand_sources(config)
    assert "sources" not in expanded.data
    assert expanded.data._target_ == config.data._target_


def test_every_source_is_read_at_one_image_size_the_largest_of_their_defaults(three_sets: list[Path]) -> None:
    register_resolvers()
    expanded = expand_sources(compose_config(["task=multitask", sources_override(three_sets)]))

    sizes = {name: list(source.data_module.image_size) for name, source in expanded.data.sources.items()}
    # alone, boxes and masks would be read at twice the 64 px images (128) and classes at 1.5 times (96): the head
    # trained at 96 was then predicted and exported at 128, the first source's size
    assert sizes == {"detection": [128, 128], "segmentation": [128, 128], "shape": [128, 128]}


def test_a_source_root_with_parentheses_or_a_comma_is_read_as_written(three_sets: list[Path], tmp_path: Path) -> None:
    register_resolvers()
    root = tmp_path / "shapes.v1 (1), copy" / "classification"  # as a second download of an export is named
    root.parent.mkdir()
    root.symlink_to(three_sets[2] / "classification")
    config = compose_config(["task=multitask", f"data.sources=[{{task: classification, root: '{root}'}}]"])

    expanded = expand_sources(config)

    assert expanded.data.sources.classification.data_module.root == str(root)


def test_sources_given_different_image_sizes_are_refused(three_sets: list[Path]) -> None:
    register_resolvers()
    override = (
        f"data.sources=[{{task: detection, root: {three_sets[0] / 'detection'}, image_size: 64}}, "
        f"{{task: classification, root: {three_sets[2] / 'classification'}, image_size: 96}}]"
    )
    with pytest.raises(ConfigError, match=r"sets image sizes .*give one data.image_size for all"):
        expand_sources(compose_config(["task=multitask", override]))


def test_last_phase_augmentations_of_a_source_without_a_last_phase_are_refused(three_sets: list[Path]) -> None:
    from torchbricks.configuration import read_job_settings

    register_resolvers()
    root = three_sets[2] / "classification"
    flip = "[{_target_: torchvision.transforms.v2.RandomHorizontalFlip, p: 0.5}]"
    plain = compose_config(["task=multitask", f"data.sources=[{{task: classification, root: {root}}}]"])
    given = compose_config(
        ["task=multitask", f"data.sources=[{{task: classification, root: {root}, last_phase_augmentations: {flip}}}]"]
    )

    read_job_settings(expand_sources(plain))  # the packaged [] of the source is not refused
    with pytest.raises(ConfigError, match=r"'data\.last_phase_augmentations' .* never starts"):
        read_job_settings(expand_sources(given))


def test_experiment_json_records_the_classes_without_training_example_of_each_source(
    three_sets: list[Path], tmp_path: Path
) -> None:
    # A single-source run records them under classes_without_training_example; data.sources runs recorded nothing.
    import shutil

    from hydra.utils import instantiate

    from torchbricks.trained_experiment import describe_experiment

    register_resolvers()
    boxes = Path(shutil.copytree(three_sets[0] / "detection", tmp_path / "detection"))
    for split in ("train", "val"):
        document = json.loads((boxes / f"{split}.json").read_text())
        category = max(category["id"] for category in document["categories"]) + 1
        document["categories"].append({"id": category, "name": "hexagon", "supercategory": "shape"})
        (boxes / f"{split}.json").write_text(json.dumps(document))
    override = (
        f"data.sources=[{{task: detection, root: {boxes}}}, "
        f"{{task: classification, root: {three_sets[2] / 'classification'}, name: shape}}]"
    )
    config = expand_sources(compose_config(["task=multitask", override, "data.image_size=32"]))

    described = describe_experiment(config, instantiate(config.data))

    assert described["head_classes_without_training_example"] == {"detection": ["hexagon"]}
    assert "classes_without_training_example" not in described
