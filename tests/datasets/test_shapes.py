from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from torchvision.datasets import ImageFolder

from torchbricks.__main__ import main
from torchbricks.datasets.coco import CocoDataset
from torchbricks.datasets.shapes import CATEGORY_IDS, SHAPE_CLASSES, ShapesDatasetExistsError, write_shapes_dataset


def _digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_the_three_layouts_are_read_by_torchvision_and_pycocotools(tmp_path: Path) -> None:
    root = write_shapes_dataset(tmp_path / "shapes", num_train=12, num_val=4, image_size=48)

    folder = ImageFolder(str(root / "classification" / "train"))
    assert folder.classes == sorted(SHAPE_CLASSES)
    assert len(folder) == 12
    assert len(ImageFolder(str(root / "classification" / "val"))) == 4

    coco = COCO(str(root / "detection" / "train.json"))
    assert sorted(coco.getCatIds()) == sorted(CATEGORY_IDS.values())
    assert sorted(CATEGORY_IDS.values()) != list(range(1, len(SHAPE_CLASSES) + 1))  # deliberately not contiguous
    classes = ["background", *SHAPE_CLASSES]
    assert (root / "segmentation" / "classes.txt").read_text().split() == classes
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        assert Image.open(root / "detection" / info["file_name"]).size == (48, 48)
        # The segmentation layout holds the same images; its mask agrees with the polygons rasterized by pycocotools.
        stem = Path(info["file_name"]).stem
        mask = np.asarray(Image.open(root / "segmentation" / "train" / "masks" / f"{stem}.png"))
        assert np.array_equal(
            np.asarray(Image.open(root / "segmentation" / "train" / "images" / f"{stem}.png")),
            np.asarray(Image.open(root / "detection" / info["file_name"])),
        )
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
            x, y, w, h = annotation["bbox"]
            assert min(x, y) >= 0
            assert max(x + w, y + h) <= 48
            with warnings.catch_warnings():  # pycocotools' decode predates numpy 2's `copy` keyword and says so
                warnings.simplefilter("ignore", DeprecationWarning)
                drawn = coco.annToMask(annotation).astype(bool)
            name = coco.loadCats(annotation["category_id"])[0]["name"]
            assert (mask[drawn] == classes.index(name)).all(), (info["file_name"], name)


def test_the_coco_outlines_give_exactly_the_pixels_drawn_for_every_shape_kind(tmp_path: Path) -> None:
    root = write_shapes_dataset(tmp_path / "shapes", num_train=16, num_val=4, image_size=40, seed=3)
    path = root / "detection" / "train.json"
    coco = COCO(str(path))
    masks = root / "segmentation" / "train" / "masks"
    dataset = CocoDataset(path, with_masks=True)
    kinds: set[str] = set()

    for index, image_id in enumerate(coco.getImgIds()):
        info = coco.loadImgs(image_id)[0]
        drawn = np.asarray(Image.open(masks / Path(info["file_name"]).name)).astype(np.int64)  # Pillow's fill
        # the multitask target (COCO's rule on the outlines) is the segmentation layout's mask, pixel for pixel
        assert np.array_equal(dataset[index]["target_mask"].numpy(), drawn), info["file_name"]
        coco_mask = np.zeros_like(drawn)
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                pixels = coco.annToMask(annotation).astype(bool)
            coco_mask[pixels] = sorted(CATEGORY_IDS.values()).index(annotation["category_id"]) + 1
            rows, columns = np.nonzero(pixels)
            box = [columns.min(), rows.min(), columns.max() + 1 - columns.min(), rows.max() + 1 - rows.min()]
            assert annotation["bbox"] == [int(value) for value in box]  # the box of the pixels drawn
            assert annotation["area"] == pixels.sum()
            kinds.add(coco.loadCats(annotation["category_id"])[0]["name"])
        assert np.array_equal(coco_mask, drawn), info["file_name"]  # and so is pycocotools' annToMask

    assert kinds == set(SHAPE_CLASSES)


def test_the_same_seed_writes_the_same_files_and_another_seed_other_images(tmp_path: Path) -> None:
    first = _digest(write_shapes_dataset(tmp_path / "a", num_train=4, num_val=2, image_size=32, seed=1))
    second = _digest(write_shapes_dataset(tmp_path / "b", num_train=4, num_val=2, image_size=32, seed=1))
    other = _digest(write_shapes_dataset(tmp_path / "c", num_train=4, num_val=2, image_size=32, seed=2))

    assert first == second
    assert first["detection/train.json"] != other["detection/train.json"]


def test_an_existing_folder_is_refused_unless_overwrite(tmp_path: Path) -> None:
    root = write_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=1, image_size=32)
    before = _digest(root)

    with pytest.raises(ShapesDatasetExistsError, match="already exists"):
        write_shapes_dataset(root, num_train=3, num_val=1, image_size=32)
    assert _digest(root) == before

    write_shapes_dataset(root, num_train=3, num_val=1, image_size=32, overwrite=True)
    assert len(json.loads((root / "detection" / "train.json").read_text())["images"]) == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == ["shapes"]  # no temporary folder left


def test_an_interrupted_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save = Image.Image.save
    saved: list[object] = []

    def interrupt_the_fourth_image(image: Image.Image, *args: object, **kwargs: object) -> None:
        saved.append(args[0] if args else None)
        if len(saved) == 4:  # a few files are written already: Ctrl-C in the middle of the data set
            raise KeyboardInterrupt
        save(image, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "save", interrupt_the_fourth_image)
    with pytest.raises(KeyboardInterrupt):
        write_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=1, image_size=32)

    assert list(tmp_path.iterdir()) == []


def test_make_dataset_command_writes_the_layouts_and_refuses_an_existing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["make-dataset", "shapes", str(tmp_path / "shapes"), "--num-train", "3", "--num-val", "2", "--image-size", "32"]

    assert main(arguments) == 0
    assert sorted(path.name for path in (tmp_path / "shapes").iterdir()) == ["classification", "detection", "segmentation"]
    assert main(arguments) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("swap", ["two renames", "one exchange"])
def test_an_overwrite_whose_swap_fails_puts_the_existing_data_set_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: str
) -> None:
    # The old data set was moved aside to a hidden .shapes.<id>.old folder and left there, and shapes/ was gone. Where
    # the folders cannot be exchanged in one step (not Linux, or a file system without it) they are swapped by two
    # renames, the second failing here; on Linux the exchange itself fails.
    import os

    from torchbricks import _files

    root = write_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=1, image_size=32)
    before = _digest(root)
    rename = os.replace

    def fails_to_swap_in_the_new_folder(source: str | Path, target: str | Path) -> None:
        if Path(source).name.endswith(".tmp") and Path(target) == root:
            raise OSError(16, "Device or resource busy")  # a folder in use on Windows, a network share
        rename(source, target)

    def fails_to_exchange(first: Path, second: Path) -> bool:
        raise OSError(16, "Device or resource busy")

    if swap == "two renames":
        monkeypatch.setattr(_files, "_exchange", lambda first, second: False)
        monkeypatch.setattr(os, "replace", fails_to_swap_in_the_new_folder)
    else:
        monkeypatch.setattr(_files, "_exchange", fails_to_exchange)
    with pytest.raises(OSError, match="busy"):
        write_shapes_dataset(root, num_train=3, num_val=1, image_size=32, overwrite=True)

    assert _digest(root) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["shapes"]
