"""`torchbricks train task=detection data.root=DIR` on the same shapes in the COCO, YOLO and Pascal VOC layouts (YOLO
also as Darknet and CVAT write it, and as labelImg and Label Studio save it, without splits; COCO as Roboflow, CVAT
and Label Studio write it): the layout is found from the folder and every run names the same classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from layouts import coco_as_tools_write_it, coco_to_voc, coco_to_yolo, yolo_to_darknet, yolo_without_splits

from torchbricks.__main__ import main
from torchbricks.datasets.shapes import SHAPE_CLASSES, write_shapes_dataset

TINY = ["trainer.max_epochs=1", "data.image_size=64", "data.batch_size=4", "n_visualized=4"]


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("data")
    coco = write_shapes_dataset(folder / "shapes", num_train=8, num_val=4, image_size=64) / "detection"
    yolo = coco_to_yolo(coco, folder / "yolo")
    pools = {tool: yolo_without_splits(yolo, folder / tool, tool) for tool in ("labelimg", "label_studio")}
    darknet = yolo_to_darknet(yolo, folder / "darknet")
    coco_tools = {
        f"coco_{tool}": coco_as_tools_write_it(coco, folder / f"coco_{tool}", tool)
        for tool in ("roboflow", "cvat", "label_studio")
    }
    return {"coco": coco, "yolo": yolo, "voc": coco_to_voc(coco, folder / "voc"), "darknet": darknet, **pools, **coco_tools}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("layout", "task"),
    [
        *[(layout, "detection") for layout in ("coco", "yolo", "voc", "darknet", "labelimg", "label_studio")],
        *[(layout, "detection") for layout in ("coco_roboflow", "coco_label_studio")],
        ("coco_cvat", "multitask"),
    ],
)
def test_detection_trains_from_each_layout_with_the_same_class_names(
    roots: dict[str, Path], tmp_path: Path, layout: str, task: str
) -> None:
    status = main(
        [
            "train",
            f"task={task}",
            f"data.root={roots[layout]}",
            f"experiment.path_experiments={tmp_path}",
            "experiment.name=run",
            *TINY,
        ]
    )

    assert status == 0
    description = json.loads((tmp_path / "run" / "experiment.json").read_text())
    assert description["class_names"] == list(SHAPE_CLASSES)
    assert description.get("category_ids") == ([3, 7, 12] if layout.startswith("coco") else None)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["detection/map_50"] <= 1.0


def test_multitask_on_voc_boxes_exits_with_an_error_naming_the_task(
    roots: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["train", "task=multitask", f"data.root={roots['voc']}", f"experiment.path_experiments={tmp_path}", *TINY])

    assert status == 2
    assert "'data.task' is multitask" in capsys.readouterr().err


def test_a_named_layout_is_used_even_where_another_is_found(
    roots: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["train", "task=detection", f"data.root={roots['voc']}", "data.layout=yolo", f"experiment.path_experiments={tmp_path}"]
    )

    assert status == 2
    assert "has no data.yaml" in capsys.readouterr().err
