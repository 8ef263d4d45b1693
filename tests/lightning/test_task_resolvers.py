from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from layouts import OUTLINE_CLASSES, expected_outline_mask, outline_image_index, write_outline_data
from omegaconf import OmegaConf
from PIL import Image

from torchbricks.configuration import compose_config, create_brick_collection, instantiate_config
from torchbricks.datasets.shapes import write_shapes_dataset
from torchbricks.errors import ConfigError, DataError
from torchbricks.lightning.task_resolvers import (
    check_class_weights,
    class_names_of,
    class_weights_of,
    image_size_of,
    register_resolvers,
    segmentation_layout_of,
)
from torchbricks.tags import Stage


def test_configs_read_the_classes_of_each_layout_from_the_data(tmp_path: Path) -> None:
    root = write_shapes_dataset(tmp_path / "shapes", num_train=3, num_val=1, image_size=32)
    register_resolvers()
    config = OmegaConf.create(
        {
            "folder": f"${{torchbricks_class_names:image_folder,{root / 'classification'}}}",
            "masks": f"${{torchbricks_num_classes:segmentation_folder,{root / 'segmentation'}}}",
            "coco": f"${{torchbricks_class_names:coco,{root / 'detection'}}}",
            "coco_masks": f"${{torchbricks_class_names:coco_with_background,{root / 'detection'}}}",
            "strides": "${torchbricks_backbone:compact_cnn,2,strides}",
        }
    )

    assert list(config.folder) == ["circle", "square", "triangle"]
    assert config.masks == 4
    assert list(config.coco) == ["circle", "square", "triangle"]  # category ids 3, 7, 12 in id order
    assert list(config.coco_masks) == ["background", "circle", "square", "triangle"]
    assert list(config.strides) == [16, 32]


def test_an_unknown_layout_is_a_config_error_with_the_close_match(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'image_folder'"):
        class_names_of("image_folders", str(tmp_path))


# --- loss.class_weights ---------------------------------------------------------------------------------------------


def _imbalanced_image_folder(root: Path) -> Path:
    """`root/{train,val}/<class>/*.png`, 32 px: 8 `common` and 2 `rare` training images."""
    for split, counts in (("train", {"common": 8, "rare": 2}), ("val", {"common": 1, "rare": 1})):
        for name, count in counts.items():
            (root / split / name).mkdir(parents=True)
            for index in range(count):
                Image.new("RGB", (32, 32), (40 * index % 255, 90, 200 if name == "rare" else 20)).save(
                    root / split / name / f"{index}.png"
                )
    return root


def _segmentation_folder(root: Path, masks: list[np.ndarray], names: list[str]) -> Path:
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        for index, mask in enumerate(masks):
            Image.new("RGB", mask.shape[::-1]).save(root / split / "images" / f"{index}.png")
            Image.fromarray(mask.astype(np.uint8), mode="L").save(root / split / "masks" / f"{index}.png")
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    return root


def _loss_weight(config: Any, head: str) -> list[float]:
    collection = create_brick_collection(config)
    return collection[head]["loss"].model.weight.tolist()


def test_auto_class_weights_are_the_inverse_image_counts_of_the_training_split_in_the_built_loss(tmp_path: Path) -> None:
    root = _imbalanced_image_folder(tmp_path / "data")
    register_resolvers()
    config = compose_config(["task=classification", f"data.root={root}", "loss.class_weights=auto"])

    resolved = check_class_weights(config)

    # 8 and 2 images: weights 1/8 and 1/2, scaled to average 1
    assert resolved == {"model.bricks.classification.loss.model.class_weights": pytest.approx([0.4, 1.6])}
    assert _loss_weight(config, "classification") == pytest.approx([0.4, 1.6])


def test_auto_class_weights_of_segmentation_are_the_inverse_pixel_counts_without_255(tmp_path: Path) -> None:
    first = np.zeros((8, 8), dtype=np.uint8)
    first[:2] = 1  # 16 road pixels
    first[7] = 255
    second = np.zeros((8, 8), dtype=np.uint8)
    second[0, :4] = 2  # 4 car pixels
    root = _segmentation_folder(tmp_path / "data", [first, second], ["background", "road", "car"])
    register_resolvers()
    config = compose_config(["task=segmentation", f"data.root={root}", "loss.class_weights=auto"])

    counts = np.array([64 - 16 - 8 + 64 - 4, 16, 4], dtype=np.float64)  # background, road, car
    expected = (1 / counts) * 3 / (1 / counts).sum()
    assert _loss_weight(config, "segmentation") == pytest.approx(expected.tolist(), abs=1e-5)


def test_listed_class_weights_are_used_as_given_and_null_gives_none(tmp_path: Path) -> None:
    root = _imbalanced_image_folder(tmp_path / "data")
    register_resolvers()

    listed = compose_config(["task=classification", f"data.root={root}", "loss.class_weights=[1, 3]"])
    plain = compose_config(["task=classification", f"data.root={root}"])

    assert _loss_weight(listed, "classification") == [1.0, 3.0]
    assert create_brick_collection(plain)["classification"]["loss"].model.weight is None
    assert check_class_weights(plain) == {}


def test_the_resolved_config_rebuilds_the_same_weights_without_the_data(tmp_path: Path) -> None:
    root = _imbalanced_image_folder(tmp_path / "data")
    register_resolvers()
    config = compose_config(["task=classification", f"data.root={root}", "loss.class_weights=auto"])
    resolved = OmegaConf.create(OmegaConf.to_container(config, resolve=True))  # as resolved_config.yaml holds it
    shutil.rmtree(root)

    assert _loss_weight(resolved, "classification") == pytest.approx([0.4, 1.6])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[1, 2]", r"'loss.class_weights' has 2 weights but the segmentation_folder data at .* has 4 classes"),
        ("[1, -2, 1, 1]", r"'loss.class_weights' must hold finite numbers >= 0"),
        ("automatic", r"'loss.class_weights' must be null, auto or a list .* got 'automatic'\. Did you mean 'auto'\?"),
    ],
)
def test_a_bad_class_weights_value_is_one_error_line_naming_the_key_before_anything_is_written(
    value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchbricks.__main__ import main

    root = write_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=1, image_size=32) / "segmentation"  # 4 classes
    experiments = tmp_path / "experiments"
    (experiments / "run").mkdir(parents=True)
    (experiments / "run" / "config.yaml").write_text("kept: true\n")

    overrides = [f"loss.class_weights={value}", "experiment.name=run", "experiment.overwrite=true"]
    status = main(["train", "task=segmentation", f"data.root={root}", f"experiment.path_experiments={experiments}", *overrides])

    error = capsys.readouterr().err.strip()
    assert status == 2
    assert error.count("\n") == 0
    assert re.search(message, error), error
    assert (experiments / "run" / "config.yaml").read_text() == "kept: true\n"  # overwrite=true deleted nothing


def test_class_weights_set_where_no_head_reads_them_are_refused(tmp_path: Path) -> None:
    register_resolvers()
    config = compose_config(["loss.class_weights=auto"])  # the digits job: its head takes no class weights

    with pytest.raises(ConfigError, match=r"'loss\.class_weights' is set, but no brick of this config reads it"):
        check_class_weights(config)


def test_auto_class_weights_need_data_they_can_count(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"counts classes in image_folder, segmentation_folder, or the masks .* not .coco."):
        class_weights_of("auto", "coco", str(write_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=1) / "detection"))


def test_heads_composed_with_their_weights_resolved_are_reported_as_they_are(tmp_path: Path) -> None:
    root = _imbalanced_image_folder(tmp_path / "data")
    register_resolvers()
    config = compose_config(["task=classification", f"data.root={root}", "loss.class_weights=auto"])
    resolved = OmegaConf.create(OmegaConf.to_container(config, resolve=True))  # e.g. a head per data source

    assert check_class_weights(resolved) == {"model.bricks.classification.loss.model.class_weights": pytest.approx([0.4, 1.6])}


def test_auto_class_weights_of_a_multitask_segmentation_head_count_the_masks_drawn_from_coco(tmp_path: Path) -> None:
    from torchbricks.datasets.class_frequencies import coco_pixel_counts, inverse_frequency_weights

    root = write_shapes_dataset(tmp_path / "shapes", num_train=3, num_val=1, image_size=32) / "detection"
    names = class_names_of("coco_with_background", str(root))

    assert class_weights_of("auto", "coco_with_background", str(root)) == inverse_frequency_weights(
        coco_pixel_counts(root / "train.json"), names
    )


@pytest.mark.parametrize(("task", "folder"), [("detection", "detection"), ("segmentation", "segmentation")])
def test_image_size_is_the_tile_size_when_tiling_and_twice_the_median_image_size_without(
    tmp_path: Path, task: str, folder: str
) -> None:
    root = write_shapes_dataset(tmp_path / "shapes", num_train=3, num_val=1, image_size=128) / folder
    register_resolvers()

    tiled = compose_config([f"task={task}", f"data.root={root}", "data.tile_size=48"])
    whole = compose_config([f"task={task}", f"data.root={root}"])
    median = compose_config([f"task={task}", f"data.root={root}", "data.image_scale=1"])

    assert OmegaConf.to_container(tiled.data, resolve=True)["image_size"] == 48
    assert OmegaConf.to_container(whole.data, resolve=True)["image_size"] == 256  # the packaged data.image_scale: 2
    assert OmegaConf.to_container(median.data, resolve=True)["image_size"] == 128


def test_the_tile_size_is_the_image_size_without_reading_the_images(tmp_path: Path) -> None:
    assert image_size_of("yolo", str(tmp_path / "absent"), 32, 512, 200) == 200


@pytest.mark.parametrize("tile_size", [0, True, 6.5, "big"])
def test_a_bad_tile_size_given_to_the_image_size_resolver_names_the_key(tmp_path: Path, tile_size: Any) -> None:
    with pytest.raises(ConfigError, match=r"'data.tile_size' must be null \(whole images\) or the side of a tile"):
        image_size_of("coco", str(tmp_path), 32, 512, tile_size)


def test_the_packaged_detection_heads_cut_their_boxes_to_the_tiles_extent_only_when_tiling(tmp_path: Path) -> None:
    """With data.tile_size the batches carry each tile's `image_extent` and the mAP reads it; without, they do not,
    and a head reading it would need an input no batch has."""
    root = write_shapes_dataset(tmp_path / "shapes", num_train=3, num_val=1, image_size=32) / "detection"
    register_resolvers()
    head_inputs = ["./boxes", "./scores", "./labels", "target_boxes", "target_labels", "raw"]

    for task in ("detection", "multitask"):
        whole = compose_config([f"task={task}", f"data.root={root}"])
        tiled = compose_config([f"task={task}", f"data.root={root}", "data.tile_size=16"])

        assert OmegaConf.to_container(whole.model.bricks.detection.metrics, resolve=True)["input_names"] == head_inputs
        resolved = OmegaConf.to_container(tiled.model.bricks.detection.metrics, resolve=True)
        assert resolved["input_names"] == [*head_inputs, "image_extent"]
    # the tiled job's own batches run its test stage: the extent comes with every batch
    tiled = compose_config(["task=detection", f"data.root={root}", "data.tile_size=16"])
    data = instantiate_config(tiled, "data", num_workers=0)
    batch = next(iter(data.test_dataloader()))
    assert batch["image_extent"].shape == (len(batch["raw"]), 2)
    model = create_brick_collection(tiled)
    with torch.no_grad():
        model(dict(batch), tags=Stage.TEST)
    assert "detection/map" in model.summarize(reset=True)


def test_auto_class_weights_count_masks_rewritten_in_the_same_process_again(tmp_path: Path) -> None:
    # The automatic weights were kept per folder path for the life of the process: masks fixed in a notebook (or
    # regenerated by a script training several times) trained again with the weights of the old masks.
    first = np.zeros((8, 8), dtype=np.uint8)
    first[:2] = 1  # 16 road pixels
    root = _segmentation_folder(tmp_path / "data", [first], ["background", "road"])
    before = class_weights_of("auto", "segmentation_folder", str(root))
    second = np.zeros((8, 8), dtype=np.uint8)
    second[:6] = 1  # 48 road pixels
    _segmentation_folder(root, [second], ["background", "road"])

    after = class_weights_of("auto", "segmentation_folder", str(root))

    def inverse(counts: list[int]) -> list[float]:  # inverse frequency, averaging 1 over the classes
        inverses = [1 / count for count in counts]
        return [len(counts) * value / sum(inverses) for value in inverses]

    assert before == pytest.approx(inverse([48, 16]))
    assert after == pytest.approx(inverse([16, 48]))


def test_the_image_size_from_the_data_measures_images_replaced_in_the_same_process_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The chosen size was kept per folder for the life of the process: images replaced by larger ones (a notebook
    # training again) were resized to the old images' size, and the log said nothing.
    root = tmp_path / "data"
    for side in (64, 160):
        for split in ("train", "val"):
            for index in range(3):
                (root / split / "cat").mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (side, side)).save(root / split / "cat" / f"{index}.png")
        assert image_size_of("image_folder", str(root), 32, 512) == side
    said = capsys.readouterr().out
    assert said.count("the median size 64 x 64") == said.count("the median size 160 x 160") == 1


@pytest.mark.parametrize("layout", ["coco", "yolo"])
def test_segmentation_on_outlines_takes_its_module_classes_and_auto_weights_from_the_drawn_masks(
    tmp_path: Path, layout: str
) -> None:
    root = write_outline_data(tmp_path / layout, layout)
    register_resolvers()
    config = OmegaConf.create(
        {
            "module": f"${{torchbricks_segmentation_layout:auto,{root},module}}",
            "classes": f"${{torchbricks_class_names:${{torchbricks_segmentation_layout:auto,{root},classes}},{root}}}",
        }
    )
    pixels = sum(np.bincount(expected_outline_mask(index, layout == "coco").ravel(), minlength=256)[:3] for index in range(4))

    weights = class_weights_of("auto", f"{layout}_segmentation", str(root))

    assert config.module == "torchbricks.lightning.datamodules.OutlineSegmentationDataModule"
    assert list(config["classes"]) == ["background", *OUTLINE_CLASSES]
    inverse = 1 / pixels  # 255 (the crowd, the box without outline) is no class's
    assert weights == pytest.approx((inverse / inverse.mean()).tolist(), abs=1e-6)  # weights are given to 6 decimals


def test_segmentation_reads_mask_folders_beside_coco_files_and_falls_back_to_them_where_nothing_is_read(
    tmp_path: Path,
) -> None:
    shapes = write_shapes_dataset(tmp_path / "shapes", num_train=3, num_val=2, image_size=32)
    both = Path(shutil.copytree(shapes / "segmentation", tmp_path / "both"))
    for name in ("train.json", "val.json"):
        shutil.copy(shapes / "detection" / name, both / name)
    shutil.copytree(shapes / "detection" / "images", both / "images")
    folders = "torchbricks.lightning.datamodules.SegmentationFolderDataModule"

    assert segmentation_layout_of("auto", str(both), "module") == folders
    assert segmentation_layout_of("auto", str(both), "classes") == "segmentation_folder"
    assert (
        segmentation_layout_of("coco", str(both), "module") == "torchbricks.lightning.datamodules.OutlineSegmentationDataModule"
    )
    assert segmentation_layout_of("coco", str(both), "classes") == "coco_segmentation"
    assert segmentation_layout_of("auto", str(tmp_path / "nowhere"), "module") == folders  # its reader names the folder
    with pytest.raises(DataError, match=r"^The data folder '.*nowhere' does not exist"):
        segmentation_layout_of("auto", str(tmp_path / "nowhere"), "classes")


@pytest.mark.parametrize("layout", ["coco", "label_studio"])
def test_auto_class_weights_of_multitask_count_the_masks_drawn_from_the_training_split_only(tmp_path: Path, layout: str) -> None:
    from torchbricks.datasets.class_frequencies import inverse_frequency_weights
    from torchbricks.datasets.detection_layouts import read_detection_split

    root = write_outline_data(tmp_path / layout, layout)
    if layout == "coco":
        (root / "val.json").unlink()  # validation drawn from the training file's images
    read = "coco" if layout == "coco" else "yolo"
    train = [outline_image_index(record.path) for record in read_detection_split(root, read, "train").records]
    pool = 4 if layout == "coco" else 8
    assert 0 < len(train) < pool  # the split, not the whole file or pool
    crowd = layout == "coco"
    counts = sum(np.bincount(expected_outline_mask(index, crowd).ravel(), minlength=256)[:3] for index in train)

    weights = class_weights_of("auto", "auto_with_background", str(root))

    assert weights == inverse_frequency_weights(counts.tolist(), ["background", *OUTLINE_CLASSES])
