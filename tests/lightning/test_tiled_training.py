"""`data.tile_size`: the box (COCO, YOLO, VOC) and segmentation data modules serve tiles of large images, and the main
job trains on them."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from layouts import coco_to_voc, coco_to_yolo, voc_xml

from torchbricks.__main__ import main
from torchbricks.datasets.shapes import write_shapes_dataset
from torchbricks.datasets.tiled import TiledDataset, TileGroupSampler
from torchbricks.datasets.tiling import tile_windows
from torchbricks.errors import BrickError, ConfigError
from torchbricks.lightning.datamodules import (
    CocoDataModule,
    DetectionDataModule,
    ImageFolderDataModule,
    SegmentationFolderDataModule,
)

TILES_PER_IMAGE = len(tile_windows(128, 128, 64, 0.2))  # 3 x 3


@pytest.fixture(scope="module")
def large_shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shapes written at 128 pixels, cut into 64-pixel tiles."""
    return write_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes", num_train=6, num_val=2, image_size=128)


def test_coco_module_serves_tiles_at_the_tile_size_by_default(large_shapes: Path) -> None:
    data = CocoDataModule(large_shapes / "detection", tile_size=64, batch_size=4, num_workers=0)
    loader = data.train_dataloader()
    batch = next(iter(loader))

    assert data.image_size == (64, 64)  # a tile is not downscaled unless image_size says so
    assert isinstance(data.datasets["train"], TiledDataset)
    assert len(data.datasets["train"]) == 6 * TILES_PER_IMAGE
    assert len(data.datasets["validation"]) == 2 * TILES_PER_IMAGE
    assert isinstance(loader.sampler, TileGroupSampler)
    assert len(loader) == 6 * TILES_PER_IMAGE // 4  # the last incomplete batch is dropped
    assert batch["raw"].shape == (4, 3, 64, 64)
    assert float(batch["target_boxes"].max()) <= 64


def test_tiles_are_resized_to_an_image_size_given_beside_the_tile_size(large_shapes: Path) -> None:
    data = CocoDataModule(large_shapes / "detection", task="multitask", tile_size=64, image_size=32, batch_size=4, num_workers=0)
    batch = next(iter(data.val_dataloader()))

    assert batch["raw"].shape == (4, 3, 32, 32)
    assert batch["target_mask"].shape == (4, 32, 32)


def _tile_boxes(data: DetectionDataModule) -> list[tuple[float, ...]]:
    """Every box of the validation tiles (fixed windows) with its label, rounded, in a canonical order."""
    found = []
    for sample in data.datasets["validation"]:
        for box, label in zip(sample["target_boxes"].tolist(), sample["target_labels"].tolist(), strict=True):
            found.append((*(round(value, 1) for value in box), label))
    return sorted(found)


@pytest.mark.parametrize("layout", ["yolo", "voc"])
def test_detection_module_cuts_yolo_and_voc_boxes_into_the_tiles_coco_gives(
    large_shapes: Path, tmp_path: Path, layout: str
) -> None:
    convert = {"yolo": coco_to_yolo, "voc": coco_to_voc}[layout]
    root = convert(large_shapes / "detection", tmp_path / layout)
    data = DetectionDataModule(root, tile_size=64, batch_size=4, num_workers=0)
    coco = DetectionDataModule(large_shapes / "detection", layout="coco", tile_size=64, batch_size=4, num_workers=0)

    assert data.layout == layout
    assert data.image_size == (64, 64)
    assert isinstance(data.datasets["train"], TiledDataset)
    assert len(data.datasets["train"]) == 6 * TILES_PER_IMAGE
    assert next(iter(data.train_dataloader()))["raw"].shape == (4, 3, 64, 64)
    assert _tile_boxes(data) == _tile_boxes(coco)


def test_voc_difficult_objects_stay_ignored_in_their_tiles(large_shapes: Path, tmp_path: Path) -> None:
    """A difficult object keeps its label -2 - class in the tile that holds it; the padding of a batch stays -1."""
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    image = next((large_shapes / "classification" / "train").glob("*/*.png"))
    objects = {"train_0": [("circle", [4.0, 4.0, 20.0, 20.0], False), ("square", [80.0, 80.0, 30.0, 30.0], True)]}
    objects["val_0"] = [("circle", [70.0, 6.0, 20.0, 20.0], False), ("square", [10.0, 80.0, 24.0, 24.0], False)]
    for image_id, found in objects.items():
        (root / "JPEGImages" / f"{image_id}.png").write_bytes(image.read_bytes())
        (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml(f"{image_id}.png", 128, 128, found))
        (root / "ImageSets" / "Main" / f"{image_id[:-2]}.txt").write_text(f"{image_id}\n")
    data = DetectionDataModule(root, tile_size=64, batch_size=4, num_workers=0)
    train = data.datasets["train"]
    train.jitter = False  # the fixed windows, in tile_windows' order
    circle, square = data.class_names.index("circle"), data.class_names.index("square")

    by_tile = [train[index]["target_labels"].tolist() for index in range(len(train))]
    batch = next(iter(data.val_dataloader()))

    assert len(by_tile) == TILES_PER_IMAGE
    assert by_tile[0] == [circle]
    assert by_tile[-1] == [-2 - square]  # the bottom-right tile holds the difficult square, still ignored
    # Windows start at 0, 32 and 64: every window starting at 32 or 64 on both sides sees some of it (one at 32 on
    # both, 16 x 16 of its 30 x 30 pixels, under half: a cut object, ignored there anyway), those at 0 none.
    assert [index for index, tile in enumerate(by_tile) if -2 - square in tile] == [4, 5, 7, 8]
    assert all(square not in tile for tile in by_tile)
    assert set(batch["target_labels"].flatten().tolist()) <= {-1, circle, square}  # -1: the batch's padding


def test_segmentation_module_cuts_masks_with_the_images(large_shapes: Path) -> None:
    data = SegmentationFolderDataModule(large_shapes / "segmentation", tile_size=64, batch_size=4, num_workers=0)
    batch = next(iter(data.test_dataloader()))

    assert len(data.datasets["test"]) == 2 * TILES_PER_IMAGE
    assert batch["raw"].shape == (4, 3, 64, 64)
    assert batch["targets"].shape == (4, 64, 64)


def test_without_tiles_the_modules_keep_whole_images_at_their_median_size(large_shapes: Path) -> None:
    data = CocoDataModule(large_shapes / "detection", batch_size=4, num_workers=0)
    data.setup()

    assert data.image_size == (128, 128)  # the images' own size, not a fixed default
    assert SegmentationFolderDataModule(large_shapes / "segmentation", num_workers=0).image_size == (128, 128)
    tiled = SegmentationFolderDataModule(large_shapes / "segmentation", num_workers=0, tile_size=64, image_scale=2)
    assert tiled.image_size == (64, 64)  # tiles are the input at their own size, whatever the scale
    assert len(data.datasets["train"]) == 6
    assert not isinstance(data.datasets["train"], TiledDataset)


def test_a_tile_as_large_as_every_image_is_refused_naming_the_key(large_shapes: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.tile_size=128 is at least as large as every training image .* 128x128"):
        CocoDataModule(large_shapes / "detection", tile_size=128)


def test_image_folder_module_refuses_tiles(large_shapes: Path) -> None:
    with pytest.raises(BrickError, match=r"cannot tile images .*a class label belongs to the whole image"):
        ImageFolderDataModule(large_shapes / "classification", tile_size=64)


def _train(root: Path, tmp_path: Path, *overrides: str, task: str = "detection") -> int:
    return main(
        [
            "train",
            f"task={task}",
            f"data.root={root}",
            f"experiment.path_experiments={tmp_path}",
            "experiment.name=run",
            "trainer.max_epochs=1",
            "data.batch_size=4",
            "n_visualized=4",
            *overrides,
        ]
    )


@pytest.mark.slow
def test_detection_trains_on_tiles_of_larger_images_and_evaluate_says_its_metrics_are_per_tile(
    large_shapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(large_shapes / "detection", tmp_path, "data.tile_size=64") == 0

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    described = json.loads((tmp_path / "run" / "experiment.json").read_text())
    assert 0.0 <= metrics["test"]["detection/map_50"] <= 1.0
    assert metrics["onnx_max_abs_difference"] < 1e-4
    assert described["image_size"] == [64, 64]

    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "split=test"]) == 0
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert evaluation["metrics"] == metrics["test"]  # the same tiles, the same numbers: per tile, not per image
    assert (evaluation["samples"], evaluation["tiled_images"]) == (2 * TILES_PER_IMAGE, 2)
    assert f"{2 * TILES_PER_IMAGE} tiles of 2 images (the metrics are per tile" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("overrides", "task", "message"),
    [
        (["data.tile_size=0"], "detection", r"'data.tile_size' must be null \(whole images\) or .* got int 0"),
        (["data.tile_size=-64"], "segmentation", r"'data.tile_size' must be .* got int -64"),
        (["data.tile_size=6.5"], "detection", r"'data.tile_size' must be .* got float 6.5"),
        (
            ["data.tile_size=64", "data.tile_overlap=1.0"],
            "detection",
            r"'data.tile_overlap' must be .* in \[0, 1\), got float 1.0",
        ),
        (
            ["data.tile_size=64"],
            "classification",
            r"'data.tile_size' is 64, but ImageFolderDataModule does not tile images: a class",
        ),
        (["data.tile_size=500"], "detection", r"data.tile_size=500 is at least as large as every training image"),
    ],
)
def test_bad_tiles_stop_the_job_with_one_line_before_the_experiment_folder(
    large_shapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: list[str], task: str, message: str
) -> None:
    assert _train(large_shapes / task, tmp_path, *overrides, task=task) == 2

    error = capsys.readouterr().err.strip()
    assert error.startswith("torchbricks: error:")
    assert len(error.splitlines()) == 1
    assert re.search(message, error), error
    assert not (tmp_path / "run").exists()


README = Path(__file__).parents[2] / "README.md"


@pytest.mark.slow
def test_readme_large_images_commands_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's tiling commands as written, with overrides appended that make the data set and the run tiny."""
    text = README.read_text()
    body = text[text.index("**Large images.**") :]
    block = body[body.index("```bash\n") + len("```bash\n") : body.index("```", body.index("```bash\n") + 1)]
    commands = [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()]
    assert [command[:2] for command in commands] == [["torchbricks", "make-dataset"], ["torchbricks", "train"]]
    monkeypatch.chdir(tmp_path)
    tiny = {
        "make-dataset": ["--num-train", "4", "--num-val", "2"],
        "train": ["trainer.max_epochs=1", "data.batch_size=4", "n_visualized=4", "export_onnx=false", "experiment.name=run"],
    }

    for command in commands:
        assert main(command[1:] + tiny[command[1]]) == 0, command

    described = json.loads((tmp_path / "build" / "experiments" / "run" / "experiment.json").read_text())
    assert described["image_size"] == [96, 96]
    assert (tmp_path / "build" / "experiments" / "run" / "metrics.json").is_file()
