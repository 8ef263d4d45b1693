"""`evaluate --images`: a row per evaluated sample naming its file, checked against the files and labels on disk."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from torch.utils.data import ConcatDataset, Subset

from torchbricks.__main__ import main
from torchbricks._evaluation_images import sample_sources, worst_images
from torchbricks.datasets.readers import CocoDataset, ImageFolderDataset
from torchbricks.datasets.tiled import TiledDataset
from torchbricks.datasets.tiling import tile_windows
from torchbricks.evaluate import evaluate_experiment


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def test_sample_sources_name_each_samples_file_through_subsets_concatenations_and_tiles(tmp_path: Path) -> None:
    for name, size in (("cat/a.png", (40, 30)), ("cat/b.png", (8, 8)), ("dog/c.png", (8, 8))):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size).save(tmp_path / name)
    folder = ImageFolderDataset(tmp_path)
    files = [str(path) for path, _ in folder.samples]
    annotations = {
        "images": [{"id": 1, "file_name": "cat/a.png", "width": 40, "height": 30}],
        "annotations": [],
        "categories": [{"id": 1, "name": "cat"}],
    }
    (tmp_path / "boxes.json").write_text(json.dumps(annotations))
    tiled = TiledDataset(CocoDataset(tmp_path / "boxes.json"), tile_size=20, overlap=0.0)

    assert sample_sources(folder) == files
    assert sample_sources(ConcatDataset([Subset(folder, [2, 0]), folder])) == [files[2], files[0], *files]
    assert sample_sources(tiled) == [
        f"{tmp_path / 'cat' / 'a.png'}@{','.join(map(str, window))}" for window in tile_windows(30, 40, 20, 0.0)
    ]
    assert len(sample_sources(tiled)) == len(tiled) == 4


def test_worst_images_count_the_wrong_samples_of_each_head_and_leave_out_unscored_ones() -> None:
    rows = [
        {"file": "a", "boxes/error": "2", "kind/error": ""},  # `kind` not labelled in this sample's batch
        {"file": "b", "boxes/error": "0", "kind/error": "1"},
        {"file": "c", "boxes/error": "5", "kind/error": "0"},
    ]
    assert worst_images((["file", "boxes/error", "kind/error"], rows)) == {
        "boxes": (2, 3, [("c", "5"), ("a", "2")]),
        "kind": (1, 2, [("b", "1")]),
    }


def test_a_classification_row_per_test_image_with_its_folders_class_and_as_many_wrong_as_the_accuracy_says(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path
) -> None:
    folder = trained_experiment("classification")
    result = evaluate_experiment(
        folder, [f"data.root={shapes_root / 'classification'}"], out=tmp_path / "e.json", images=tmp_path / "i.csv"
    )

    rows = _rows(tmp_path / "i.csv")
    assert sorted(Path(row["file"]).relative_to(shapes_root / "classification" / "val").as_posix() for row in rows) == sorted(
        path.relative_to(shapes_root / "classification" / "val").as_posix()
        for path in (shapes_root / "classification" / "val").glob("*/*.png")
    )
    assert all(row["classification/true"] == Path(row["file"]).parent.name for row in rows)  # the folder is the truth
    assert all(
        row["classification/error"] == str(int(row["classification/true"] != row["classification/predicted"])) for row in rows
    )
    wrong = sum(row["classification/error"] == "1" for row in rows)
    assert wrong == round((1 - result.metrics["classification/accuracy"]) * len(rows))
    assert result.worst_images["classification"][:2] == (wrong, len(rows))
    assert json.loads((tmp_path / "e.json").read_text())["images_file"] == str(tmp_path / "i.csv")


def test_a_detection_row_counts_the_true_boxes_of_its_image_in_the_annotations(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path
) -> None:
    folder = trained_experiment("detection")
    evaluate_experiment(folder, [f"data.root={shapes_root / 'detection'}"], out=tmp_path / "e.json", images=tmp_path / "i.csv")

    coco = json.loads((shapes_root / "detection" / "val.json").read_text())
    true_boxes = {image["file_name"]: 0 for image in coco["images"]}
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    for annotation in coco["annotations"]:
        true_boxes[names[annotation["image_id"]]] += 1
    rows = _rows(tmp_path / "i.csv")
    assert {Path(row["file"]).name: int(row["detection/true"]) for row in rows} == {
        Path(name).name: count for name, count in true_boxes.items()
    }
    for row in rows:  # every box unmatched at worst, at best the difference of the counts
        true, predicted, error = int(row["detection/true"]), int(row["detection/predicted"]), int(row["detection/error"])
        assert abs(true - predicted) <= error <= true + predicted
        assert (error - abs(true - predicted)) % 2 == 0


def test_evaluate_images_on_the_command_line_writes_beside_the_json_and_prints_the_worst(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = trained_experiment("segmentation")
    arguments = [
        "evaluate",
        str(folder),
        f"data.root={shapes_root / 'segmentation'}",
        "--out",
        str(tmp_path / "run.json"),
        "--images",
    ]

    assert main(arguments) == 0

    printed = capsys.readouterr().out
    rows = _rows(tmp_path / "run_images.csv")
    assert f"Per image: {tmp_path / 'run_images.csv'}" in printed
    assert "segmentation: the most pixels wrong (of those scored): " in printed
    assert len(rows) == len(list((shapes_root / "segmentation" / "val" / "images").iterdir()))
    assert all(0.0 <= float(row["segmentation/error"]) <= 1.0 for row in rows)
    worst = max(rows, key=lambda row: float(row["segmentation/error"]))
    assert f"{worst['file']} ({worst['segmentation/error']})" in printed


def test_rows_that_would_name_the_wrong_files_are_refused() -> None:
    from torch import nn

    from torchbricks._evaluation_images import evaluate_images
    from torchbricks.errors import BrickError

    with pytest.raises(BrickError, match=r"0 samples were predicted and 2 files listed for them"):
        evaluate_images(nn.Linear(1, 1), [], ["a.png", "b.png"], lambda head: None)
