from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from helpers import coco_semantic_mask, uncompressed_rle

from torchbricks.datasets.readers import DataError
from torchbricks.datasets.shapes import write_shapes_dataset
from torchbricks.errors import BrickError
from torchbricks.lightning.datamodules import (
    CocoDataModule,
    DigitsDataModule,
    GeneratedImageClassificationDataModule,
    ImageFolderDataModule,
    NamedTensorDataset,
    SegmentationFolderDataModule,
    cap_num_workers,
)


def test_digits_are_split_in_three_stratified_parts_of_named_batches() -> None:
    data = DigitsDataModule(batch_size=32)
    data.setup()

    sizes = {name: len(dataset) for name, dataset in data.datasets.items()}
    batch = next(iter(data.train_dataloader()))

    assert sizes == {"train": 1257, "validation": 180, "test": 360}
    assert sorted(batch) == ["raw", "targets"]
    assert batch["raw"].shape == (32, 1, 8, 8)
    assert float(batch["raw"].min()) >= 0.0
    assert float(batch["raw"].max()) <= 1.0
    assert torch.bincount(data.datasets["test"].tensors["targets"]).min() >= 35  # stratified: every digit is tested


def test_digits_split_is_fixed_by_the_seed() -> None:
    first, second = DigitsDataModule(seed=3), DigitsDataModule(seed=3)
    first.setup()
    second.setup()

    assert torch.equal(first.datasets["test"].tensors["raw"], second.datasets["test"].tensors["raw"])


def test_digits_fractions_must_leave_training_data() -> None:
    with pytest.raises(BrickError, match="sum to less than 1"):
        DigitsDataModule(validation_fraction=0.5, test_fraction=0.5)


def test_generated_images_go_through_the_transforms_as_pil_images() -> None:
    data = GeneratedImageClassificationDataModule(batch_size=4, num_samples=8, test_transforms=torchvision.transforms.ToTensor())

    images, labels = next(iter(data.test_dataloader()))
    raw_images, _ = next(iter(data.train_dataloader()))

    assert images.shape == (4, 3, 32, 32)
    assert images.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert raw_images.shape == (4, 3, 32, 32)


def test_named_tensor_dataset_needs_equal_lengths() -> None:
    with pytest.raises(BrickError, match=r"equal lengths, got lengths \{'raw': 3, 'targets': 2\}"):
        NamedTensorDataset(raw=torch.zeros(3), targets=torch.zeros(2))


def test_num_workers_are_capped_to_leave_a_core_for_training() -> None:
    assert cap_num_workers(0) == 0
    assert cap_num_workers(1000) < 1000


def _shapes(tmp_path: Path) -> Path:
    return write_shapes_dataset(tmp_path / "shapes", num_train=6, num_val=3, image_size=32)


def test_file_data_modules_serve_named_batches_from_loader_processes(tmp_path: Path) -> None:
    root = _shapes(tmp_path)
    modules = {
        "classification": ImageFolderDataModule(root / "classification", image_size=16, batch_size=4, num_workers=1),
        "segmentation": SegmentationFolderDataModule(root / "segmentation", image_size=16, batch_size=4, num_workers=1),
        "multitask": CocoDataModule(root / "detection", task="multitask", image_size=16, batch_size=4, num_workers=1),
    }
    shapes = {
        name: {key: tuple(value.shape) for key, value in next(iter(data.train_dataloader())).items()}
        for name, data in modules.items()
    }

    assert shapes["classification"] == {"raw": (4, 3, 16, 16), "targets": (4,)}
    assert shapes["segmentation"] == {"raw": (4, 3, 16, 16), "targets": (4, 16, 16)}
    boxes = shapes["multitask"].pop("target_boxes")
    assert boxes[0] == 4
    assert boxes[2] == 4
    assert shapes["multitask"]["target_mask"] == (4, 16, 16)
    assert shapes["multitask"]["target_classes"] == (4, 3)
    assert modules["segmentation"].class_names == ["background", "circle", "square", "triangle"]
    assert all(data.num_workers == cap_num_workers(1) for data in modules.values())
    assert len(modules["classification"].train_dataloader()) == 1  # 6 images, batches of 4: the incomplete one is dropped
    assert len(modules["classification"].test_dataloader().dataset) == 3  # no test/: the validation split is tested


def test_a_test_split_is_used_when_present(tmp_path: Path) -> None:
    root = _shapes(tmp_path)
    shutil.copytree(root / "classification" / "val", root / "classification" / "test")
    (root / "classification" / "test" / "circle" / "extra.png").write_bytes(
        next((root / "classification" / "val").rglob("*.png")).read_bytes()
    )
    data = ImageFolderDataModule(root / "classification", image_size=16, batch_size=2, num_workers=0)

    assert len(data.test_dataloader().dataset) == 4
    assert len(data.val_dataloader().dataset) == 3


def test_coco_data_module_checks_the_task_and_the_categories_of_every_split(tmp_path: Path) -> None:
    root = _shapes(tmp_path)
    with pytest.raises(BrickError, match="Did you mean 'detection'"):
        CocoDataModule(root / "detection", task="detections")

    document = json.loads((root / "detection" / "val.json").read_text())
    document["categories"][0]["name"] = "oval"
    (root / "detection" / "val.json").write_text(json.dumps(document))
    with pytest.raises(DataError, match=r"categories of .*val\.json' \(\['oval'"):
        CocoDataModule(root / "detection").setup()


def test_multitask_masks_from_rle_files_reach_the_batches_as_pycocotools_draws_them_crowds_left_out(tmp_path: Path) -> None:
    mask_utils = pytest.importorskip("pycocotools.mask")
    root = _shapes(tmp_path)
    path = root / "detection" / "val.json"
    document = json.loads(path.read_text())
    sizes = {image["id"]: (image["height"], image["width"]) for image in document["images"]}
    for position, annotation in enumerate(document["annotations"]):  # polygons -> RLE, compressed and uncompressed in turn
        height, width = sizes[annotation["image_id"]]
        rle = mask_utils.merge(mask_utils.frPyObjects(annotation["segmentation"], height, width))
        if position % 2:
            annotation["segmentation"] = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
        else:
            annotation["segmentation"] = uncompressed_rle(_decoded(mask_utils, rle))
    first = document["annotations"][0]
    crowd = {**first, "id": 10_000, "iscrowd": 1, "category_id": document["categories"][-1]["id"]}
    crowd["segmentation"] = {"size": list(sizes[first["image_id"]]), "counts": [0, sizes[first["image_id"]][0] * 4]}
    document["annotations"].append(crowd)  # the four left columns, whole, of another class: ignored
    path.write_text(json.dumps(document))
    data = CocoDataModule(root / "detection", task="multitask", image_size=32, batch_size=3, num_workers=1)

    batch = next(iter(data.val_dataloader()))

    for position, image_id in enumerate(sorted(sizes)[:3]):
        expected, present = coco_semantic_mask(path, image_id)
        np.testing.assert_array_equal(batch["target_mask"][position].numpy(), expected)
        np.testing.assert_array_equal(batch["target_classes"][position].numpy(), present)


def _decoded(mask_utils: Any, rle: dict[str, Any]) -> np.ndarray:
    with warnings.catch_warnings():  # pycocotools' decode predates numpy 2's `copy` keyword and says so
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle)
