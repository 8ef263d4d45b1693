from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from torchbricks.__main__ import main
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickNotTrainable
from torchbricks.datasets.transforms import create_transform
from torchbricks.errors import BrickError, MissingExtraError
from torchbricks.predict import BrickBackend, PredictionWriter, predict_images, resize_mask_nearest
from torchbricks.tags import Stage
from torchbricks.trained_experiment import TrainedExperiment, load_experiment

SRC = Path(__file__).parents[1] / "src"


# --- a hand-made detector: the box around the bright pixels, fast and exact -------------------------------------------


class BrightBox(nn.Module):
    """One box per image around the pixels brighter than 0.5 (score: the box's share of the image), label 0."""

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bright = raw.mean(dim=1) > 0.5
        boxes, scores, labels = [], [], []
        for mask in bright:
            ys, xs = torch.nonzero(mask, as_tuple=True)
            if len(xs) == 0:
                boxes.append(torch.zeros(1, 4))
                scores.append(torch.zeros(1))
                labels.append(torch.full((1,), -1))
                continue
            box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()[None]
            boxes.append(box)
            scores.append(((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])) / mask.numel())
            labels.append(torch.zeros(1, dtype=torch.int64))
        return torch.stack(boxes), torch.stack(scores), torch.stack(labels)


def bright_box_experiment(folder: Path, input_size: int = 32) -> TrainedExperiment:
    collection = BrickCollection(
        {"det": {"find": BrickNotTrainable(BrightBox(), input_names=["raw"], output_names=["./boxes", "./scores", "./labels"])}}
    )
    description = {"image_size": [input_size, input_size], "class_names": ["blob"]}
    return TrainedExperiment(folder, None, description, collection.eval())


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def blob_image(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    x_min, y_min, x_max, y_max = box
    image[y_min:y_max, x_min:x_max] = 255
    return image


# --- the bricks backend on trained experiments, against the collection's own outputs ---------------------------------


def reference_outputs(experiment: TrainedExperiment, path: Path) -> tuple[dict[str, torch.Tensor], tuple[int, int]]:
    """The collection's INFERENCE outputs on one image prepared by the data modules' test transform."""
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional

    image = Image.open(path).convert("RGB")
    sample = create_transform(experiment.image_size)({"image": tv_tensors.Image(functional.pil_to_tensor(image))})
    raw = sample["image"].as_subclass(torch.Tensor)[None]
    with torch.no_grad():
        outputs = experiment.collection(named_inputs={"raw": raw}, tags=Stage.INFERENCE, return_inputs=False)
    return outputs, (image.height, image.width)


def image_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.png"))


@pytest.mark.slow
def test_detection_boxes_are_the_collection_boxes_scaled_to_the_original_size(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path
) -> None:
    experiment = load_experiment(trained_experiment("detection"))
    experiment.collection.detection.decode.model.score_threshold = 0.0  # a one-epoch model scores low: keep every box
    images = image_files(shapes_root / "detection" / "images" / "val")
    predict_images(BrickBackend(experiment), [images[0].parent], tmp_path / "out", experiment.class_names, progress=False)

    written = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert written, "no box written"
    for image_id, path in enumerate(images, start=1):
        outputs, (height, width) = reference_outputs(experiment, path)
        scale = torch.tensor([width / 32, height / 32] * 2)
        limits = torch.tensor([width, height] * 2, dtype=torch.float32)
        boxes = torch.minimum((outputs["detection/boxes"][0] * scale).clamp(min=0), limits)  # cut to the image
        keep = (outputs["detection/labels"][0] >= 0) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes = boxes[keep]
        rows = [row for row in written if row["image_id"] == image_id]
        assert {row["file_name"] for row in rows} == {str(path)}
        actual = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (row["bbox"] for row in rows)])
        torch.testing.assert_close(actual, boxes, rtol=0, atol=2e-3)  # written to 0.001 px
        torch.testing.assert_close(torch.tensor([row["score"] for row in rows]), outputs["detection/scores"][0][keep])
        labels = outputs["detection/labels"][0][keep].tolist()
        assert [row["category_id"] for row in rows] == labels  # shapes' COCO categories: the class index without ids
        assert [row["category_name"] for row in rows] == [experiment.class_names[label] for label in labels]
    drawn = Image.open(tmp_path / "out" / "drawn" / f"{images[0].stem}.jpg")
    assert drawn.size == Image.open(images[0]).size == (64, 64)


@pytest.mark.slow
def test_segmentation_masks_are_the_collection_masks_resized_by_nearest_neighbour(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path
) -> None:
    experiment = load_experiment(trained_experiment("segmentation"))
    folder = shapes_root / "segmentation" / "val" / "images"
    predict_images(BrickBackend(experiment), [folder], tmp_path / "out", experiment.class_names, overlays=True, progress=False)

    for path in image_files(folder):
        outputs, (height, width) = reference_outputs(experiment, path)
        expected = F.interpolate(outputs["segmentation/mask"][None].float(), size=(height, width), mode="nearest")[0, 0].long()
        mask = np.array(Image.open(tmp_path / "out" / "masks" / f"{path.stem}.png"))
        np.testing.assert_array_equal(mask, expected.numpy())
        overlay = Image.open(tmp_path / "out" / "overlays" / f"{path.stem}.png")
        assert overlay.mode == "P"
        assert overlay.info.get("transparency") == 0
        np.testing.assert_array_equal(np.array(overlay), expected.numpy())  # palette indices are the classes
        assert Image.open(tmp_path / "out" / "drawn" / f"{path.stem}.jpg").size == (width, height)


@pytest.mark.slow
def test_classification_csv_holds_the_collection_probabilities(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path
) -> None:
    experiment = load_experiment(trained_experiment("classification"))
    folder = shapes_root / "classification" / "val"
    predict_images(BrickBackend(experiment), [folder], tmp_path / "out", experiment.class_names, progress=False)

    rows = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    assert [row["file"] for row in rows] == [str(path) for path in image_files(folder)]
    names = experiment.class_names
    for row in rows:
        outputs, _ = reference_outputs(experiment, Path(row["file"]))
        probabilities = outputs["classification/probabilities"][0]
        best = int(probabilities.argmax())
        assert row["class"] == names[best]
        assert float(row["score"]) == pytest.approx(float(probabilities[best]), abs=1e-4)
        top = [entry.split(":") for entry in row["top5"].split(";")]
        assert [name for name, _ in top] == [names[int(index)] for index in probabilities.argsort(descending=True)]
        assert [float(value) for _, value in top] == pytest.approx(probabilities.sort(descending=True).values.tolist(), abs=1e-4)
    # the drawn pictures keep the folder structure of the source (class folders here)
    assert sorted(
        path.relative_to(tmp_path / "out" / "drawn").as_posix() for path in (tmp_path / "out" / "drawn").rglob("*.jpg")
    ) == [path.relative_to(folder).with_suffix(".jpg").as_posix() for path in image_files(folder)]


@pytest.mark.slow
def test_multitask_writes_every_head_under_its_name(trained_experiment: Any, shapes_root: Path, tmp_path: Path) -> None:
    experiment = load_experiment(trained_experiment("multitask"))
    experiment.collection.detection.decode.model.score_threshold = 0.0
    folder = shapes_root / "detection" / "images" / "val"
    backend = BrickBackend(experiment)
    assert backend.heads == {"detection": "detection", "presence": "multilabel", "segmentation": "segmentation"}
    predict_images(backend, [folder], tmp_path / "out", experiment.class_names, progress=False)

    out = tmp_path / "out"
    assert json.loads((out / "detection_predictions.json").read_text())
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert list(rows[0]) == ["file", "presence/present", "presence/probabilities"]
    for row, path in zip(rows, image_files(folder), strict=True):
        outputs, (height, width) = reference_outputs(experiment, path)
        probabilities = outputs["presence/probabilities"][0].tolist()
        written = [float(entry.split(":")[1]) for entry in row["presence/probabilities"].split(";")]
        assert written == pytest.approx(probabilities, abs=1e-4)
        present = [name for name, value in zip(experiment.class_names, probabilities, strict=True) if value > 0.5]
        assert row["presence/present"] == ";".join(present)
        mask = np.array(Image.open(out / "segmentation_masks" / f"{path.stem}.png"))
        expected = F.interpolate(outputs["segmentation/mask"][None].float(), size=(height, width), mode="nearest")[0, 0]
        np.testing.assert_array_equal(mask, expected.long().numpy())
        assert not (out / "segmentation_overlays").exists()  # overlays only with overlays=True (--overlays)


@pytest.mark.slow
def test_tiled_segmentation_averages_the_tiles_probabilities(trained_experiment: Any, tmp_path: Path) -> None:
    experiment = load_experiment(trained_experiment("segmentation"))
    image = np.random.default_rng(0).integers(0, 256, size=(64, 80, 3), dtype=np.uint8)
    windows = [(0, 0, 32, 32), (16, 0, 48, 32), (32, 0, 64, 32), (48, 0, 80, 32)]
    windows += [(x_min, 16, x_max, 48) for x_min, _, x_max, _ in windows[:4]]
    windows += [(x_min, 32, x_max, 64) for x_min, _, x_max, _ in windows[:4]]

    total = torch.zeros(4, 64, 80)
    count = torch.zeros(64, 80)
    for x_min, y_min, x_max, y_max in windows:  # tiles of the input size: no resize
        raw = torch.from_numpy(image[y_min:y_max, x_min:x_max].copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            probabilities = experiment.collection(named_inputs={"raw": raw}, tags=Stage.INFERENCE)["segmentation/probabilities"]
        total[:, y_min:y_max, x_min:x_max] += probabilities[0]
        count[y_min:y_max, x_min:x_max] += 1
    expected = (total / count).argmax(dim=0)

    result = BrickBackend(experiment, tile=32, overlap=0.5).predict([image])[0]
    np.testing.assert_array_equal(result["segmentation"]["mask"], expected.numpy())


# --- tiling, merging and the backend contract on the hand-made detector ----------------------------------------------


def test_tiled_detection_finds_an_object_across_a_tile_border_once(tmp_path: Path) -> None:
    # Tiles of 64 with overlap 0.5 over a width of 112 start at x = 0, 24 and 48: the blob at x 50..70 is cut by the
    # first tile's border (its part there overlaps the whole blob by IoU 0.7) and whole in the other two.
    image = blob_image(64, 112, (50, 20, 70, 40))
    backend = BrickBackend(bright_box_experiment(tmp_path), tile=64, overlap=0.5)

    result = backend.predict([image])[0]["det"]

    assert result["kind"] == "detection"
    assert result["labels"].tolist() == [0]
    np.testing.assert_allclose(result["boxes"][0], [50, 20, 70, 40], atol=2)  # tiles are resized 64 -> 32
    assert result["boxes"].dtype == np.float32
    assert result["scores"].dtype == np.float32
    assert result["labels"].dtype == np.int64


def test_boxes_are_scaled_from_the_input_size_to_each_image_size(tmp_path: Path) -> None:
    backend = BrickBackend(bright_box_experiment(tmp_path))
    images = [blob_image(64, 64, (8, 16, 32, 48)), blob_image(32, 128, (64, 0, 128, 16))]

    results = backend.predict(images)

    np.testing.assert_allclose(results[0]["det"]["boxes"], [[8, 16, 32, 48]], atol=1e-4)
    np.testing.assert_allclose(results[1]["det"]["boxes"], [[64, 0, 128, 16]], atol=1e-4)


def test_resize_mask_nearest_matches_torch_nearest() -> None:
    rng = np.random.default_rng(0)
    for height, width, new_height, new_width in [(8, 8, 32, 32), (7, 5, 13, 29), (32, 32, 9, 17)]:
        mask = rng.integers(0, 5, size=(height, width))
        expected = F.interpolate(torch.from_numpy(mask)[None, None].float(), size=(new_height, new_width), mode="nearest")
        np.testing.assert_array_equal(resize_mask_nearest(mask, new_height, new_width), expected[0, 0].long().numpy())


def test_writer_takes_results_of_any_backend(tmp_path: Path) -> None:
    heads = {"cls": "classification", "seg": "segmentation"}
    writer = PredictionWriter(tmp_path, heads, class_names=["a", "b", "c"])
    mask = np.zeros((6, 8), dtype=np.int64)
    mask[2:, 4:] = 2
    result = {
        "cls": {"kind": "classification", "probabilities": np.array([0.2, 0.7, 0.1], dtype=np.float32)},
        "seg": {"kind": "segmentation", "mask": mask},
    }
    writer.add("one", "one.png", np.zeros((6, 8, 3), dtype=np.uint8), result)
    writer.finish()

    assert (tmp_path / "predictions.csv").read_text().splitlines() == [
        "file,cls/class,cls/score,cls/top5",
        "one.png,b,0.7000,b:0.7000;a:0.2000;c:0.1000",
    ]
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "seg_masks" / "one.png")), mask)
    drawn = np.array(Image.open(tmp_path / "drawn" / "one.jpg"))
    assert drawn.shape == (6, 8, 3)


def test_coco_category_ids_of_the_training_data_name_the_classes(tmp_path: Path) -> None:
    writer = PredictionWriter(tmp_path, {"det": "detection"}, class_names=["cat", "dog"], category_ids=[3, 17])
    boxes = np.array([[1, 2, 5, 8]], dtype=np.float32)
    writer.add(
        "x",
        "x.png",
        np.zeros((10, 10, 3), np.uint8),
        {"det": {"kind": "detection", "boxes": boxes, "scores": np.array([0.9], np.float32), "labels": np.array([1])}},
    )
    writer.finish()

    [row] = json.loads((tmp_path / "predictions.json").read_text())
    assert row == {
        "image_id": 1,
        "file_name": "x.png",
        "category_id": 17,
        "category_name": "dog",
        "bbox": [1.0, 2.0, 4.0, 6.0],
        "score": 0.9,
    }


# --- sources, bad input, the output folder ---------------------------------------------------------------------------


def test_unreadable_images_are_skipped_named_and_listed(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    write_png(folder / "good.png", blob_image(32, 32, (4, 4, 12, 12)))
    (folder / "broken.png").write_bytes(b"not a png")
    skipped: list[str] = []

    summary = predict_images(
        BrickBackend(bright_box_experiment(tmp_path)),
        [folder],
        tmp_path / "out",
        progress=False,
        on_skip=lambda s, r: skipped.append(s),
    )

    assert summary.num_images == 1
    assert skipped == [str(folder / "broken.png")]
    assert [source for source, _ in summary.skipped] == skipped
    assert (tmp_path / "out" / "skipped.txt").read_text().startswith(f"{folder / 'broken.png'}\t")
    assert [row["file_name"] for row in json.loads((tmp_path / "out" / "predictions.json").read_text())] == [
        str(folder / "good.png")
    ]


class _FirstClass:
    def __init__(self) -> None:
        self.heads = {"cls": "classification"}

    def predict(self, images: list[np.ndarray]) -> list[dict[str, Any]]:
        return [{"cls": {"kind": "classification", "probabilities": np.array([0.9, 0.1], np.float32)}} for _ in images]


def test_file_names_that_are_not_utf_8_are_written_with_their_bytes_not_a_raw_error(tmp_path: Path) -> None:
    # 'caf\xe9.png', as a zip made on Windows unpacks on Linux: writing predictions.csv raised UnicodeEncodeError
    # ('surrogates not allowed') after every image was predicted, and the run left nothing
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (8, 6)).save(folder / os.fsdecode(b"caf\xe9.png"), format="PNG")
    (folder / os.fsdecode(b"bro\xefken.png")).write_bytes(b"not a png")

    summary = predict_images(_FirstClass(), [folder], tmp_path / "out", class_names=["a", "b"], progress=False)

    assert summary.num_images == 1
    csv_lines = (tmp_path / "out" / "predictions.csv").read_bytes().splitlines()
    assert csv_lines[1].startswith(os.fsencode(folder) + b"/caf\xe9.png,a,0.9000")
    assert (tmp_path / "out" / "skipped.txt").read_bytes().startswith(os.fsencode(folder) + b"/bro\xefken.png\t")


def test_files_of_a_linked_folder_are_written_under_the_path_given_not_the_links_target(tmp_path: Path) -> None:
    photos, archive = tmp_path / "photos", tmp_path / "archive" / "2019"
    write_png(photos / "a.png", blob_image(32, 32, (4, 4, 12, 12)))
    write_png(archive / "b.png", blob_image(32, 32, (8, 8, 20, 20)))
    (photos / "2019").symlink_to(archive, target_is_directory=True)

    predict_images(BrickBackend(bright_box_experiment(tmp_path)), [photos], tmp_path / "out", progress=False)

    drawn = tmp_path / "out" / "drawn"
    assert sorted(path.relative_to(drawn).as_posix() for path in drawn.rglob("*.jpg")) == ["2019/b.jpg", "a.jpg"]
    rows = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [row["file_name"] for row in rows] == [str(photos / "2019" / "b.png"), str(photos / "a.png")]


def test_predict_tile_reads_images_beyond_pillows_pixel_limit_and_without_it_names_them(
    trained_experiment: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = trained_experiment("detection")
    write_png(tmp_path / "images" / "ortho.png", blob_image(64, 48, (4, 4, 12, 12)))
    write_png(tmp_path / "images" / "small.png", blob_image(16, 16, (4, 4, 12, 12)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 3072 pixels: refused by default

    assert main(["predict", str(experiment), str(tmp_path / "images"), "--out", str(tmp_path / "whole")]) == 0
    assert "TORCHBRICKS_MAX_IMAGE_PIXELS=0" in (tmp_path / "whole" / "skipped.txt").read_text()
    assert main(["predict", str(experiment), str(tmp_path / "images"), "--out", str(tmp_path / "tiled"), "--tile", "32"]) == 0
    assert not (tmp_path / "tiled" / "skipped.txt").exists()
    assert (tmp_path / "tiled" / "drawn" / "ortho.jpg").is_file()


def test_predict_tile_hands_the_model_one_image_at_a_time_and_batches_its_tiles(
    trained_experiment: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --batch-size counts tiles with --tile: 32 large images (each with its int64 mask and float sums) were read and
    # held at once
    from torchbricks._predict_backend import BrickBackend

    experiment = trained_experiment("detection")
    for index in range(3):
        write_png(tmp_path / "images" / f"{index}.png", blob_image(64, 48, (4, 4, 12, 12)))
    images_per_call: list[int] = []
    predict = BrickBackend.predict

    def counted(self: BrickBackend, images: Any, sizes: Any = None) -> Any:
        images_per_call.append(len(images))
        return predict(self, images, sizes)

    monkeypatch.setattr(BrickBackend, "predict", counted)
    arguments = ["predict", str(experiment), str(tmp_path / "images"), "--lanes", "1", "--batch-size", "4"]

    assert main([*arguments, "--out", str(tmp_path / "whole")]) == 0
    assert images_per_call == [3]
    images_per_call.clear()
    assert main([*arguments, "--out", str(tmp_path / "tiled"), "--tile", "32"]) == 0
    assert images_per_call == [1, 1, 1]


def test_predict_refuses_in_one_line_an_experiment_not_of_rgb_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["train", "trainer.max_epochs=1", f"experiment.path_experiments={tmp_path}", "experiment.name=digits"]
    assert main(arguments) == 0  # the default job: grey 8 x 8 digits
    write_png(tmp_path / "photo.png", blob_image(32, 32, (4, 4, 12, 12)))
    capsys.readouterr()

    assert main(["predict", str(tmp_path / "digits"), str(tmp_path / "photo.png"), "--out", str(tmp_path / "out")]) == 2

    error = capsys.readouterr().err.strip()
    assert error.startswith(f"torchbricks: error: Experiment {str(tmp_path / 'digits')!r} does not run on RGB images of [8, 8]")
    assert len(error.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_an_existing_output_folder_is_refused_unless_overwrite(tmp_path: Path) -> None:
    source = write_png(tmp_path / "a.png", blob_image(16, 16, (2, 2, 8, 8)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    backend = BrickBackend(bright_box_experiment(tmp_path))

    with pytest.raises(BrickError, match="exists and is not empty; pass --overwrite"):
        predict_images(backend, [source], out, progress=False)
    assert sorted(path.name for path in out.iterdir()) == ["mine.txt"]

    predict_images(backend, [source], out, overwrite=True, progress=False)
    assert sorted(path.name for path in out.iterdir()) == ["drawn", "predictions.json"]


def test_a_failing_run_leaves_nothing_behind(tmp_path: Path) -> None:
    for index in range(5):
        write_png(tmp_path / "images" / f"{index}.png", blob_image(16, 16, (2, 2, 8, 8)))

    class FailingBackend:
        def __init__(self) -> None:
            self.heads = {"det": "detection"}
            self.calls = 0

        def predict(self, images: list[np.ndarray]) -> list[dict[str, Any]]:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("out of memory")
            empty = {
                "kind": "detection",
                "boxes": np.zeros((0, 4), np.float32),
                "scores": np.zeros(0, np.float32),
                "labels": np.zeros(0, np.int64),
            }
            return [{"det": empty} for _ in images]

    for lanes in (1, 2):
        with pytest.raises(RuntimeError, match="out of memory"):
            predict_images(FailingBackend(), [tmp_path / "images"], tmp_path / "out", batch_size=2, lanes=lanes, progress=False)
        assert sorted(path.name for path in tmp_path.iterdir()) == ["images"]


def test_sources_matching_nothing_are_refused(tmp_path: Path) -> None:
    backend = BrickBackend(bright_box_experiment(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BrickError, match=r"Source '.*empty' matches no image or video file \(looked for .*\.png"):
        predict_images(backend, [tmp_path / "empty"], tmp_path / "out", progress=False)
    with pytest.raises(BrickError, match=r"Source '.*\*\.jpg' matches no image"):
        predict_images(backend, [str(tmp_path / "*.jpg")], tmp_path / "out", progress=False)
    with pytest.raises(BrickError, match="is neither an image, a folder nor a glob pattern"):
        predict_images(backend, [tmp_path / "missing.png"], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_globs_and_animated_gif_frames_are_images(tmp_path: Path) -> None:
    write_png(tmp_path / "photos" / "a.png", blob_image(16, 16, (0, 0, 4, 4)))
    write_png(tmp_path / "photos" / "b.png", blob_image(16, 16, (8, 8, 16, 16)))
    frames = [Image.fromarray(blob_image(16, 16, (x, 0, x + 4, 4))) for x in (0, 6, 12)]
    frames[0].save(tmp_path / "photos" / "clip.gif", save_all=True, append_images=frames[1:], duration=40, loop=0)

    predict_images(
        BrickBackend(bright_box_experiment(tmp_path)), [str(tmp_path / "photos" / "*")], tmp_path / "out", progress=False
    )

    rows = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [row["file_name"] for row in rows] == [
        str(tmp_path / "photos" / name) for name in ("a.png", "b.png", "clip.gif#0", "clip.gif#1", "clip.gif#2")
    ]
    assert [round(row["bbox"][0]) for row in rows[2:]] == [0, 6, 12]
    drawn = sorted(path.name for path in (tmp_path / "out" / "drawn").iterdir())
    assert drawn == ["a.jpg", "b.jpg", "clip_frame000000.jpg", "clip_frame000001.jpg", "clip_frame000002.jpg"]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_predict_opens_each_animation_once_and_names_and_orders_its_frames_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, workers: int
) -> None:
    # Each animation was opened to count its frames before any file was read, then once more for every frame
    from helpers import count_reads

    write_png(tmp_path / "photos" / "a.png", blob_image(16, 16, (0, 0, 4, 4)))
    frames = [Image.fromarray(blob_image(16, 16, (x, 0, x + 4, 4))) for x in (0, 6, 12)]
    clip = tmp_path / "photos" / f"clip{suffix}"
    frames[0].save(clip, save_all=True, append_images=frames[1:], duration=40, loop=0, lossless=True)
    write_png(tmp_path / "photos" / "z.png", blob_image(16, 16, (8, 8, 16, 16)))
    backend = BrickBackend(bright_box_experiment(tmp_path))
    opened, _ = count_reads(monkeypatch)

    summary = predict_images(backend, [tmp_path / "photos"], tmp_path / "out", progress=False, workers=workers, batch_size=2)
    monkeypatch.undo()

    assert opened[str(clip)] == 1
    assert summary.num_images == 5
    rows = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [row["file_name"] for row in rows] == [str(tmp_path / "photos" / "a.png")] + [
        f"{clip}#{frame}" for frame in range(3)
    ] + [str(tmp_path / "photos" / "z.png")]
    assert [round(row["bbox"][0]) for row in rows[1:4]] == [0, 6, 12]
    drawn = sorted(path.name for path in (tmp_path / "out" / "drawn").iterdir())
    assert drawn == ["a.jpg", "clip_frame000000.jpg", "clip_frame000001.jpg", "clip_frame000002.jpg", "z.jpg"]


def test_a_video_without_torchcodec_names_what_to_install(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    if __import__("importlib").util.find_spec("torchcodec") is not None:
        pytest.skip("torchcodec is installed")
    (tmp_path / "clip.mp4").write_bytes(b"\x00")
    with pytest.raises(
        MissingExtraError,
        match=r"Reading video '.*clip.mp4' needs torchcodec.*pip install torchcodec.*GIF and animated WebP .* need no extra",
    ):
        predict_images(BrickBackend(bright_box_experiment(tmp_path)), [tmp_path / "clip.mp4"], tmp_path / "out", progress=False)


def test_a_video_in_a_folder_that_cannot_be_read_is_skipped_and_listed(tmp_path: Path) -> None:
    write_png(tmp_path / "photos" / "a.png", blob_image(16, 16, (2, 2, 8, 8)))
    (tmp_path / "photos" / "clip.mp4").write_bytes(b"\x00")
    skipped: list[str] = []

    summary = predict_images(
        BrickBackend(bright_box_experiment(tmp_path)),
        [tmp_path / "photos"],
        tmp_path / "out",
        progress=False,
        on_skip=lambda source, reason: skipped.append(source),
    )

    assert summary.num_images == 1
    assert skipped == [str(tmp_path / "photos" / "clip.mp4")]
    assert (tmp_path / "out" / "skipped.txt").read_text().startswith(f"{tmp_path / 'photos' / 'clip.mp4'}\ta video")


def test_progress_is_a_line_per_tenth_when_not_a_terminal(tmp_path: Path) -> None:
    for index in range(20):
        write_png(tmp_path / "images" / f"{index:02d}.png", blob_image(16, 16, (2, 2, 8, 8)))
    stream = io.StringIO()

    predict_images(
        BrickBackend(bright_box_experiment(tmp_path)), [tmp_path / "images"], tmp_path / "out", batch_size=2, stream=stream
    )

    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert "\r" not in stream.getvalue()
    assert lines[0].startswith("predict 2/20 images (10 %)")
    assert lines[-1].startswith("predict 20/20 images (100 %)")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_without_tqdm_is_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # not a dependency: a machine predicting with --onnx may lack it
    for index in range(4):
        write_png(tmp_path / "images" / f"{index:02d}.png", blob_image(16, 16, (2, 2, 8, 8)))
    stream = _Terminal()

    predict_images(
        BrickBackend(bright_box_experiment(tmp_path)), [tmp_path / "images"], tmp_path / "out", batch_size=2, stream=stream
    )

    assert stream.getvalue().splitlines()[-1].startswith("predict 4/4 images (100 %)")


def test_the_backend_refuses_a_bad_tile(tmp_path: Path) -> None:
    with pytest.raises(BrickError, match=r"tile overlap must be a fraction in \[0, 1\), got 1.5"):
        BrickBackend(bright_box_experiment(tmp_path), tile=32, overlap=1.5)


# --- the command as a user runs it -----------------------------------------------------------------------------------


def test_predict_refuses_a_folder_that_is_not_an_experiment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path), str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("torchbricks: error: ")
    assert "is not a trained experiment folder" in error
    assert len(error.strip().splitlines()) == 1


@pytest.mark.slow
def test_predict_command_writes_into_the_experiment_with_progress(trained_experiment: Any, shapes_root: Path) -> None:
    experiment = trained_experiment("classification")
    command = [sys.executable, "-m", "torchbricks", "predict", str(experiment), str(shapes_root / "classification" / "val")]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}, check=False
    )

    assert completed.returncode == 0, completed.stderr
    assert "predict 4/4 images (100 %)" in completed.stdout  # not a terminal: progress lines
    [out] = (experiment / "predictions").iterdir()
    assert "Predicted 4 images in" in completed.stdout
    assert str(out) in completed.stdout
    assert len(list(csv.DictReader((out / "predictions.csv").open()))) == 4
    assert len(list((out / "drawn").rglob("*.jpg"))) == 4

    again = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(SRC)}, check=False
    )
    assert again.returncode == 2
    assert (
        again.stderr.strip()
        == f"torchbricks: error: The output folder {str(out)!r} exists and is not empty; pass --overwrite to replace it."
    )

    in_lanes = subprocess.run(
        [*command, "--out", str(out.with_name("lanes")), "--lanes", "2", "--batch-size", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "2"},
        check=False,
    )
    assert in_lanes.returncode == 0, in_lanes.stderr
    assert (out.with_name("lanes") / "predictions.csv").read_text() == (out / "predictions.csv").read_text()


def test_readme_backend_example_prints_what_it_shows(tmp_path: Path) -> None:
    from readme_blocks import python_blocks

    block = next(block for block in python_blocks(Path(__file__).parents[1] / "README.md") if "class CentreBox" in block)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(block, "<README CentreBox>", "exec"), {"__name__": "readme"})
    shown = block.strip().splitlines()[-1].removeprefix("# ")
    assert buffer.getvalue().strip() == shown


def test_reading_and_writing_on_threads_or_in_line_write_the_same_files(tmp_path: Path) -> None:
    for index in range(7):
        write_png(tmp_path / "images" / f"{index}.png", blob_image(24, 40, (index, 2, index + 10, 12)))
    backend = BrickBackend(bright_box_experiment(tmp_path))

    runs = [(0, True), (3, True), (3, False), (1, False)]
    for workers, concurrent in runs:
        predict_images(
            backend,
            [tmp_path / "images"],
            tmp_path / f"out{workers}{concurrent}",
            batch_size=3,
            workers=workers,
            pictures="png",
            concurrent_writes=concurrent,
            progress=False,
        )

    first = tmp_path / "out0True"
    assert len(list(first.rglob("*.png"))) == 7
    for workers, concurrent in runs[1:]:
        for path in sorted(first.rglob("*.*")):
            other = tmp_path / f"out{workers}{concurrent}" / path.relative_to(first)
            assert path.read_bytes() == other.read_bytes(), (workers, concurrent, path.name)


def test_files_are_written_beside_the_model_only_when_it_leaves_a_core_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(4):
        write_png(tmp_path / "images" / f"{index}.png", blob_image(24, 40, (index, 2, index + 10, 12)))
    backend = BrickBackend(bright_box_experiment(tmp_path))
    writers: list[str] = []
    write_images = PredictionWriter.write_images
    monkeypatch.setattr(
        PredictionWriter,
        "write_images",
        lambda self, *arguments: writers.append(threading.current_thread().name) or write_images(self, *arguments),
    )
    monkeypatch.setattr("os.cpu_count", lambda: 2)

    for threads in (1, 2):
        monkeypatch.setattr(torch, "get_num_threads", lambda threads=threads: threads)
        assert backend.threads == threads
        writers.clear()
        predict_images(backend, [tmp_path / "images"], tmp_path / f"out{threads}", workers=2, lanes=1, progress=False)
        assert len(writers) == 4
        beside = threads == 1  # one of two cores free: files are written on threads while the model predicts
        assert all(name.startswith("torchbricks-write") == beside for name in writers), (threads, writers)


@pytest.fixture
def torch_threads() -> Any:
    """Restores torch's thread count after a test that sets it."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


class SlowFirstBatch:
    """A backend whose first batch finishes last, so lanes complete out of order; records threads per call."""

    def __init__(self, backend: BrickBackend) -> None:
        self.backend = backend
        self.heads = backend.heads
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def predict(self, images: list[np.ndarray]) -> list[dict[str, Any]]:
        with self.lock:
            first = not self.calls
            self.calls.append((threading.current_thread().name, torch.get_num_threads()))
        if first:
            time.sleep(0.3)
        return self.backend.predict(images)


def test_lanes_write_the_files_of_one_lane_in_the_sources_order(tmp_path: Path) -> None:
    for index in range(9):
        write_png(tmp_path / "images" / f"{index}.png", blob_image(24, 40, (index, 2, index + 10, 12)))
    (tmp_path / "images" / "4b.png").write_bytes(b"not a png")
    backend = BrickBackend(bright_box_experiment(tmp_path))
    skipped: dict[int, list[str]] = {1: [], 3: []}

    for lanes in (1, 3):
        slow = SlowFirstBatch(backend)
        predict_images(
            slow,
            [tmp_path / "images"],
            tmp_path / f"out{lanes}",
            batch_size=2,
            lanes=lanes,
            pictures="png",
            progress=False,
            on_skip=lambda source, _, lanes=lanes: skipped[lanes].append(source),
        )
        assert len({name for name, _ in slow.calls}) == lanes, slow.calls  # the batches ran on `lanes` threads

    one_lane, three = tmp_path / "out1", tmp_path / "out3"
    assert len(list(one_lane.rglob("*.png"))) == 9
    assert sorted(path.relative_to(one_lane) for path in one_lane.rglob("*")) == sorted(
        path.relative_to(three) for path in three.rglob("*")
    )
    for path in sorted(one_lane.rglob("*.*")):
        assert path.read_bytes() == (three / path.relative_to(one_lane)).read_bytes(), path.name
    assert skipped[1] == skipped[3] == [str(tmp_path / "images" / "4b.png")]


def test_each_lane_predicts_with_its_share_of_torch_threads_restored_after(tmp_path: Path, torch_threads: int) -> None:
    for index in range(8):
        write_png(tmp_path / "images" / f"{index}.png", blob_image(16, 16, (2, 2, 8, 8)))
    slow = SlowFirstBatch(BrickBackend(bright_box_experiment(tmp_path)))
    slow.shared_threads = slow.backend.shared_threads  # type: ignore[attr-defined]
    torch.set_num_threads(4)

    predict_images(slow, [tmp_path / "images"], tmp_path / "out", batch_size=2, lanes=2, progress=False)

    assert {threads for _, threads in slow.calls} == {2}
    assert torch.get_num_threads() == 4


def test_a_cpu_backend_with_two_threads_predicts_in_two_lanes_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, torch_threads: int
) -> None:
    for index in range(6):
        write_png(tmp_path / "images" / f"{index}.png", blob_image(16, 16, (2, 2, 8, 8)))
    backend = BrickBackend(bright_box_experiment(tmp_path))
    predictors: list[str] = []
    predict = backend.predict
    monkeypatch.setattr(
        backend,
        "predict",
        lambda images, sizes=None: predictors.append(threading.current_thread().name) or predict(images, sizes),
    )

    for threads, workers, expected in [(2, 2, "torchbricks-lane"), (1, 2, "MainThread"), (2, 0, "MainThread")]:
        torch.set_num_threads(threads)
        predictors.clear()
        out = tmp_path / f"out{threads}{workers}"
        predict_images(backend, [tmp_path / "images"], out, batch_size=2, workers=workers, progress=False)
        assert predictors
        assert all(name.startswith(expected) for name in predictors), (threads, workers, predictors)
        assert torch.get_num_threads() == threads


def test_lanes_must_be_one_or_more(tmp_path: Path) -> None:
    source = write_png(tmp_path / "a.png", blob_image(16, 16, (2, 2, 8, 8)))
    with pytest.raises(BrickError, match=r"lanes must be 1 or more.*got 32, 0 and 2"):
        predict_images(BrickBackend(bright_box_experiment(tmp_path)), [source], tmp_path / "out", lanes=0, progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_predict_with_onnx_gives_the_bricks_results(trained_experiment: Any, shapes_root: Path, tmp_path: Path) -> None:
    experiment = trained_experiment("classification")
    images = tmp_path / "images"
    images.mkdir()
    for path in sorted((shapes_root / "classification" / "val").rglob("*.png")):
        # At the model's input size, so both backends see the very same pixels (their resizing differs by a grey level).
        Image.open(path).convert("RGB").resize((32, 32)).save(images / f"{path.parent.name}_{path.name}")
    assert main(["export", str(experiment), "--out", str(tmp_path / "deploy.onnx")]) == 0

    assert main(["predict", str(experiment), str(images), "--out", str(tmp_path / "bricks")]) == 0
    assert (
        main(["predict", str(experiment), str(images), "--out", str(tmp_path / "onnx"), "--onnx", str(tmp_path / "deploy.onnx")])
        == 0
    )

    by_bricks, by_onnx = (
        {row["file"]: row for row in csv.DictReader((tmp_path / name / "predictions.csv").open())} for name in ("bricks", "onnx")
    )
    assert sorted(by_onnx) == sorted(by_bricks)
    assert len(by_onnx) == 4
    for name, row in by_bricks.items():
        assert by_onnx[name]["class"] == row["class"]
        assert float(by_onnx[name]["score"]) == pytest.approx(float(row["score"]), abs=1e-4)


def test_predict_with_the_onnx_file_of_another_experiment_names_its_own_classes_and_warns(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    classifier, segmenter = trained_experiment("classification"), trained_experiment("segmentation")
    assert main(["export", str(classifier), "--out", str(tmp_path / "deploy.onnx")]) == 0
    images = shapes_root / "classification" / "val"
    capsys.readouterr()

    assert (
        main(["predict", str(segmenter), str(images), "--out", str(tmp_path / "out"), "--onnx", str(tmp_path / "deploy.onnx")])
        == 0
    )

    rows = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    assert rows
    assert {row["class"] for row in rows} <= set(json.loads((classifier / "experiment.json").read_text())["class_names"])
    warning = capsys.readouterr().err
    assert f"was exported from {str(classifier.resolve())!r}, not from {str(segmenter)!r}; its own classes name" in warning


def test_predict_with_onnx_refuses_a_file_exported_before_the_experiment_trained_on(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = trained_experiment("classification")
    experiment = tmp_path / "run"
    shutil.copytree(source, experiment)
    images = shapes_root / "classification" / "val"
    assert main(["export", str(experiment)]) == 0
    assert main(["predict", str(experiment), str(images), "--out", str(tmp_path / "before"), "--onnx"]) == 0
    # training goes on (resume=true): the bricks change, the export in the folder stays
    brick = next((experiment / "bricks").rglob("*.pt"))
    weights = torch.load(brick, weights_only=True)
    torch.save({name: value + 0.01 if value.is_floating_point() else value for name, value in weights.items()}, brick)
    capsys.readouterr()

    assert main(["predict", str(experiment), str(images), "--out", str(tmp_path / "after"), "--onnx"]) == 2

    error = capsys.readouterr().err
    assert "was exported from other weights than the experiment's trained weights now" in error
    assert f"`torchbricks export {experiment} --overwrite`" in error
    assert not (tmp_path / "after").exists()
    assert main(["export", str(experiment), "--overwrite"]) == 0
    assert main(["predict", str(experiment), str(images), "--out", str(tmp_path / "after"), "--onnx"]) == 0


def test_predict_with_onnx_without_an_exported_file_says_how_to_export(
    trained_experiment: Any, shapes_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = trained_experiment("classification")
    assert main(["predict", str(experiment), str(shapes_root / "classification" / "val"), "--onnx"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        f"torchbricks: error: --onnx: no exported model {str(experiment / 'deploy.onnx')!r}; "
        f"write it with `torchbricks export {experiment}` first."
    )


@pytest.mark.slow
def test_the_overlays_option_of_the_command_writes_the_colour_masks(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path
) -> None:
    experiment = trained_experiment("segmentation")
    images = shapes_root / "segmentation" / "val" / "images"
    names = sorted(f"{path.stem}.png" for path in image_files(images))

    assert main(["predict", str(experiment), str(images), "--out", str(tmp_path / "plain"), "--pictures", "none"]) == 0
    assert main(["predict", str(experiment), str(images), "--out", str(tmp_path / "with"), "--overlays"]) == 0

    assert sorted(path.name for path in (tmp_path / "plain").iterdir()) == ["masks"]
    assert sorted(path.name for path in (tmp_path / "with" / "overlays").iterdir()) == names
    for name in names:
        overlay = np.array(Image.open(tmp_path / "with" / "overlays" / name))
        np.testing.assert_array_equal(overlay, np.array(Image.open(tmp_path / "with" / "masks" / name)))


def test_tiled_boxes_leave_out_the_cut_parts_of_an_object_another_window_saw_whole(tmp_path: Path) -> None:
    image = blob_image(32, 64, (26, 8, 38, 20))  # windows at x 0, 16, 32: the outer two see a cut half of the blob
    backend = BrickBackend(bright_box_experiment(tmp_path), tile=32, overlap=0.5)

    (result,) = backend.predict([image])

    np.testing.assert_allclose(result["det"]["boxes"], [[26.0, 8.0, 38.0, 20.0]])  # the halves overlap it at IoU 0.5 only


def test_tiled_boxes_of_two_objects_side_by_side_are_both_kept(tmp_path: Path) -> None:
    image = blob_image(32, 64, (4, 8, 12, 20))
    image[8:20, 50:60] = 255  # a second object, whole in the last window, touching no other box
    backend = BrickBackend(bright_box_experiment(tmp_path), tile=32, overlap=0.5)

    (result,) = backend.predict([image])

    assert sorted(result["det"]["boxes"][:, 0].tolist()) == [4.0, 50.0]


def test_an_output_folder_inside_a_source_folder_is_not_read_as_images_by_the_next_run(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for name, box in (("a", (2, 2, 10, 10)), ("b", (5, 1, 20, 9))):
        write_png(photos / f"{name}.png", blob_image(24, 32, box))
    backend = BrickBackend(bright_box_experiment(tmp_path))
    out = photos / "predictions"

    first = predict_images(backend, [photos], out, class_names=["blob"], progress=False, pictures="png")
    second = predict_images(backend, [photos, f"{photos}/**/*.png"], out, overwrite=True, class_names=["blob"], progress=False)

    assert first.num_images == 2
    assert second.num_images == 4  # a.png and b.png by the folder and by the glob, not predictions/drawn/*.png
    assert {row["file_name"] for row in json.loads((out / "predictions.json").read_text())} == {
        str(photos / "a.png"),
        str(photos / "b.png"),
    }


def test_two_predict_runs_in_the_same_second_write_two_default_folders_and_overwrite_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime

    import torchbricks.trained_experiment

    second = datetime.datetime(2026, 12, 6, 20, 53, 1)

    class FrozenClock(datetime.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime.datetime:
            return second

    monkeypatch.setattr(datetime, "datetime", FrozenClock)  # the clock every caller of datetime.datetime.now() reads
    experiment = tmp_path / "run"
    monkeypatch.setattr(torchbricks.trained_experiment, "load_experiment", lambda folder: bright_box_experiment(experiment))
    first = write_png(tmp_path / "first" / "a.png", blob_image(16, 16, (2, 2, 8, 8)))
    later = write_png(tmp_path / "later" / "b.png", blob_image(16, 16, (2, 2, 8, 8)))

    assert main(["predict", str(experiment), str(first)]) == 0
    assert main(["predict", str(experiment), str(later)]) == 0

    folders = sorted((experiment / "predictions").iterdir())
    stem = f"{second:%Y-%m-%d_%H-%M-%S}"
    assert [folder.name for folder in folders] == [stem, f"{stem}_2"]
    sources = [[row["file_name"] for row in json.loads((folder / "predictions.json").read_text())] for folder in folders]
    assert sources == [[str(first)], [str(later)]]


def test_a_failed_predict_run_leaves_no_default_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchbricks.trained_experiment

    experiment = tmp_path / "run"
    monkeypatch.setattr(torchbricks.trained_experiment, "load_experiment", lambda folder: bright_box_experiment(experiment))
    broken = tmp_path / "images" / "broken.png"
    broken.parent.mkdir()
    broken.write_bytes(b"not a png")

    assert main(["predict", str(experiment), str(broken)]) == 2
    assert list((experiment / "predictions").iterdir()) == []


class BrightCells(nn.Module):
    """Per 8 x 8 cell of the input, the box around its pixels brighter than 0.5 (score 0.9, label 0; label -1 for a
    cell without any): 64 boxes per 64 x 64 input."""

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, _, height, width = raw.shape
        cells = (raw.mean(dim=1) > 0.5).view(batch, height // 8, 8, width // 8, 8).permute(0, 1, 3, 2, 4)
        rows, columns = cells.any(dim=-1), cells.any(dim=-2)  # [B, cy, cx, 8]: which rows / columns of a cell are bright
        first = lambda bright: bright.int().argmax(dim=-1)  # noqa: E731
        last = lambda bright: 8 - bright.flip(-1).int().argmax(dim=-1)  # noqa: E731
        y0 = (torch.arange(height // 8) * 8)[None, :, None]
        x0 = (torch.arange(width // 8) * 8)[None, None, :]
        boxes = torch.stack([x0 + first(columns), y0 + first(rows), x0 + last(columns), y0 + last(rows)], dim=-1)
        found = rows.any(dim=-1)
        scores = torch.where(found, 0.9, 0.0)
        labels = torch.where(found, 0, -1)
        return boxes.float().reshape(batch, -1, 4), scores.reshape(batch, -1), labels.reshape(batch, -1)


def test_predict_tile_merges_a_large_image_with_many_boxes_into_one_box_per_object(tmp_path: Path) -> None:
    # 64,516 squares of 6 px on an 8 px grid over 2032 x 2032 px, in 1764 windows of 64 px at overlap 0.25 (a stride of
    # 48): 112,896 boxes, every square found whole by one to four windows, with equal scores, most against an inner
    # window border. Comparing every such box with every other at once asked for 41 GiB.
    side, spacing = 2032, 8
    image = np.zeros((side, side, 3), dtype=np.uint8)
    for row in range(1, spacing - 1):
        for column in range(1, spacing - 1):
            image[row::spacing, column::spacing] = 255
    write_png(tmp_path / "images" / "ortho.png", image)
    collection = BrickCollection(
        {"det": {"find": BrickNotTrainable(BrightCells(), input_names=["raw"], output_names=["./boxes", "./scores", "./labels"])}}
    )
    experiment = TrainedExperiment(tmp_path, None, {"image_size": [64, 64], "class_names": ["square"]}, collection.eval())

    predict_images(
        BrickBackend(experiment, tile=64, overlap=0.25), [tmp_path / "images"], tmp_path / "out", pictures=None, progress=False
    )

    rows = json.loads((tmp_path / "out" / "predictions.json").read_text())
    found = sorted(tuple(row["bbox"]) for row in rows)
    corners = range(1, side, spacing)
    assert found == sorted((float(x), float(y), 6.0, 6.0) for x in corners for y in corners)


# --- predicted boxes as labels a labelling tool opens, read back by the box readers ----------------------------------


@pytest.mark.parametrize(("layout", "images_folder", "tolerance"), [("yolo", "images", 1e-3), ("voc", "JPEGImages", 0.5)])
def test_predicted_labels_beside_their_images_are_read_back_as_the_predicted_boxes(
    tmp_path: Path, layout: str, images_folder: str, tolerance: float
) -> None:
    from torchbricks.datasets.detection_layouts import detect_detection_layout, read_detection_split

    photos = tmp_path / "photos"
    write_png(photos / "a.png", blob_image(30, 40, (5, 3, 33, 27)))
    write_png(photos / "day2" / "b.png", blob_image(48, 36, (2, 10, 30, 40)))
    write_png(photos / "empty.png", np.zeros((20, 20, 3), np.uint8))  # nothing bright: no box
    out = tmp_path / "out"
    experiment = bright_box_experiment(tmp_path / "experiment")

    predict_images(BrickBackend(experiment), [photos], out, class_names=["blob"], labels=layout, progress=False)
    shutil.copytree(photos, out / images_folder)  # the images beside their labels, as a user lays them out to train

    predicted = {Path(row["file_name"]).name: row["bbox"] for row in json.loads((out / "predictions.json").read_text())}
    assert detect_detection_layout(out) == layout
    read = [image for split in ("train", "validation") for image in read_detection_split(out, layout, split).records]
    assert sorted(image.path.name for image in read) == ["a.png", "b.png", "empty.png"]
    for image in read:
        boxes = [(item.label, item.box) for item in image.objects]
        if image.path.name == "empty.png":
            assert boxes == []
            continue
        ((label, (x_min, y_min, x_max, y_max)),) = boxes
        x, y, width, height = predicted[image.path.name]
        assert label == 0
        assert np.allclose([x_min, y_min, x_max, y_max], [x, y, x + width, y + height], atol=tolerance)


def test_predict_labels_of_a_model_without_a_detection_head_is_one_line_and_writes_nothing(
    trained_experiment: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = trained_experiment("classification")
    write_png(tmp_path / "images" / "a.png", blob_image(32, 32, (4, 4, 12, 12)))

    assert main(["predict", str(experiment), str(tmp_path / "images"), "--out", str(tmp_path / "out"), "--labels", "voc"]) == 2
    assert "labels='voc' writes the boxes of a detection head, and this model has none" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_predict_cli_writes_yolo_labels_and_the_experiments_class_names(trained_experiment: Any, tmp_path: Path) -> None:
    experiment = trained_experiment("detection")
    write_png(tmp_path / "images" / "a.png", blob_image(32, 32, (4, 4, 12, 12)))

    arguments = ["predict", str(experiment), str(tmp_path / "images"), "--out", str(tmp_path / "out"), "--labels", "yolo"]
    assert main([*arguments, "--min-score", "0"]) == 0

    assert (tmp_path / "out" / "classes.txt").read_text().splitlines() == load_experiment(experiment).class_names
    lines = (tmp_path / "out" / "labels" / "a.txt").read_text().splitlines()
    assert len(lines) == len(json.loads((tmp_path / "out" / "predictions.json").read_text()))  # min score 0: every box
    with pytest.raises(SystemExit):
        main([*arguments, "--min-score", "1.5"])


class _BrightOrDark:
    """A classifier of whole images: `bright` when the mean pixel is above one half, else `dark`."""

    def __init__(self) -> None:
        self.heads = {"kind": "classification"}

    def predict(self, images: list[np.ndarray]) -> list[dict[str, Any]]:
        bright = [float(image.mean() > 127) for image in images]
        return [
            {"kind": {"kind": "classification", "probabilities": np.array([value, 1 - value], np.float32)}} for value in bright
        ]


def test_predicted_class_folders_are_read_back_by_the_image_folder_reader_as_the_predicted_classes(tmp_path: Path) -> None:
    from torchbricks.datasets.readers import ImageFolderDataset

    photos = tmp_path / "photos"
    for name, value in (("a.png", 250), ("b.jpg", 10), ("2019/c.png", 200), ("2019/d.png", 0)):
        write_png(photos / name, np.full((8, 8, 3), value, np.uint8))
    out = tmp_path / "out"

    predict_images(_BrightOrDark(), [photos], out, class_names=["bright", "dark"], labels="folders", progress=False)

    rows = {
        Path(row["file"]).relative_to(photos).as_posix(): row["class"] for row in csv.DictReader((out / "predictions.csv").open())
    }
    read = ImageFolderDataset(out / "classified")
    found = {
        path.relative_to(out / "classified" / read.class_names[label]).as_posix(): read.class_names[label]
        for path, label in read.samples
    }
    assert found == rows == {"a.png": "bright", "b.jpg": "dark", "2019/c.png": "bright", "2019/d.png": "dark"}
    assert (out / "classified" / "dark" / "b.jpg").read_bytes() == (photos / "b.jpg").read_bytes()


def test_class_folders_of_a_video_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), (value, value, value)) for value in (0, 255)]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:])

    with pytest.raises(
        BrickError, match=r"labels='folders' sorts image files into class folders; '.*clip.gif' is a video or animation"
    ):
        predict_images(_BrightOrDark(), [tmp_path / "clip.gif"], tmp_path / "out", labels="folders", progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.gif"]


class _BrightPixels:
    """A segmenter: class 1 where a pixel is brighter than one half, 2 where it is darker than a quarter, else 0."""

    def __init__(self) -> None:
        self.heads = {"seg": "segmentation"}

    def predict(self, images: list[np.ndarray]) -> list[dict[str, Any]]:
        means = [image.mean(axis=2) for image in images]
        return [{"seg": {"kind": "segmentation", "mask": (mean > 127) * 1 + (mean < 64) * 2}} for mean in means]


def test_predicted_coco_labels_beside_their_images_are_read_back_as_the_boxes_and_the_masks(tmp_path: Path) -> None:
    import pycocotools.mask as mask_module

    from torchbricks.datasets.detection_layouts import detect_detection_layout, read_detection_split

    photos = tmp_path / "photos"
    write_png(photos / "a.png", blob_image(30, 40, (5, 3, 33, 27)))
    write_png(photos / "day2" / "b.png", blob_image(48, 36, (2, 10, 30, 40)))
    boxes_out, masks_out = tmp_path / "boxes", tmp_path / "masks"

    predict_images(
        BrickBackend(bright_box_experiment(tmp_path / "e")),
        [photos],
        boxes_out,
        class_names=["blob"],
        labels="coco",
        progress=False,
    )
    predict_images(
        _BrightPixels(), [photos], masks_out, class_names=["background", "bright", "dark"], labels="coco", progress=False
    )

    shutil.copytree(photos, boxes_out / "images")  # CVAT's COCO 1.0 layout: annotations/ beside images/
    assert detect_detection_layout(boxes_out) == "coco"
    predicted = {Path(row["file_name"]).name: row["bbox"] for row in json.loads((boxes_out / "predictions.json").read_text())}
    read = [image for split in ("train", "validation") for image in read_detection_split(boxes_out, "coco", split).records]
    assert sorted(image.path.relative_to(boxes_out / "images").as_posix() for image in read) == ["a.png", "day2/b.png"]
    for image in read:
        ((x_min, y_min, x_max, y_max),) = [item.box for item in image.objects]
        x, y, width, height = predicted[image.path.name]
        assert np.allclose([x_min, y_min, x_max, y_max], [x, y, x + width, y + height], atol=1e-3)

    document = json.loads((masks_out / "annotations" / "instances_default.json").read_text())
    files = {entry["id"]: entry["file_name"] for entry in document["images"]}
    assert sorted(files.values()) == ["a.png", "day2/b.png"]
    for annotation in document["annotations"]:
        mask = np.asarray(Image.open(masks_out / "masks" / Path(files[annotation["image_id"]]).with_suffix(".png")))
        rle = mask_module.merge(mask_module.frPyObjects(annotation["segmentation"], *mask.shape))
        assert np.array_equal(mask_module.decode(rle).astype(bool), mask == annotation["category_id"])
    assert {annotation["category_id"] for annotation in document["annotations"]} == {1, 2}


def test_a_segmentation_models_coco_labels_are_read_by_task_segmentation_as_the_predicted_masks(tmp_path: Path) -> None:
    from torchbricks.lightning.datamodules import OutlineSegmentationDataModule

    photos = tmp_path / "photos"
    for index in range(5):  # bright and dark blobs on grey: the three classes of `_BrightPixels`
        image = np.full((32, 32, 3), 100, np.uint8)
        image[2 + index : 14 + index, 3:20] = 255
        image[18:30, 10 + index : 28] = 0
        write_png(photos / f"{index}.png", image)
    out = tmp_path / "out"
    predict_images(_BrightPixels(), [photos], out, class_names=["background", "bright", "dark"], labels="coco", progress=False)
    shutil.copytree(photos, out / "images")  # the images beside annotations/, as CVAT exports COCO 1.0

    data = OutlineSegmentationDataModule(out, layout="coco", image_size=32, batch_size=1, num_workers=0, validation_fraction=0.4)
    data.setup("fit")

    assert data.class_names == ["background", "bright", "dark"]
    checked = 0
    for split in ("train", "validation"):
        dataset = data.datasets[split]
        for index in range(len(dataset)):
            name = Path(dataset.records[index].path).stem
            predicted = np.asarray(Image.open(out / "masks" / f"{name}.png"))
            np.testing.assert_array_equal(dataset[index]["targets"].numpy(), predicted)
            checked += 1
    assert checked == 5
