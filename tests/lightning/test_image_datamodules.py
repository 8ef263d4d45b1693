"""The data modules of image files in the layouts users bring."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import coco_semantic_mask, count_listings, count_reads, uncompressed_rle
from layouts import (
    OUTLINE_CLASSES,
    OUTLINE_SIDE,
    expected_box_mask,
    expected_outline_mask,
    outline_image_index,
    outline_objects,
    write_outline_data,
)

from torchbricks.datasets.readers import DataError
from torchbricks.datasets.shapes import write_shapes_dataset
from torchbricks.errors import BrickError, ConfigError
from torchbricks.lightning.datamodules import (
    CocoDataModule,
    DetectionDataModule,
    ImageFolderDataModule,
    OutlineSegmentationDataModule,
    SegmentationFolderDataModule,
    cap_num_workers,
)


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


def test_multitask_masks_from_rle_files_reach_the_batches_as_pycocotools_draws_them_crowds_ignored(tmp_path: Path) -> None:
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
    height, width = sizes[first["image_id"]]
    crowd["segmentation"] = {"size": [height, width], "counts": [0, height * 4, height * (width - 4)]}
    document["annotations"].append(crowd)  # the four left columns, whole, of another class: ignored where no object is
    path.write_text(json.dumps(document))
    data = CocoDataModule(root / "detection", task="multitask", image_size=32, batch_size=3, num_workers=1)

    batch = next(iter(data.val_dataloader()))

    for position, image_id in enumerate(sorted(sizes)[:3]):
        expected, present = coco_semantic_mask(path, image_id)
        np.testing.assert_array_equal(batch["target_mask"][position].numpy(), expected)
        np.testing.assert_array_equal(batch["target_classes"][position].numpy(), present)


def _shapes(tmp_path: Path) -> Path:
    return write_shapes_dataset(tmp_path / "shapes", num_train=6, num_val=3, image_size=32)


def _decoded(mask_utils: Any, rle: dict[str, Any]) -> np.ndarray:
    with warnings.catch_warnings():  # pycocotools' decode predates numpy 2's `copy` keyword and says so
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle)


def test_the_coco_data_module_reads_coco_whatever_layout_is_asked(tmp_path: Path) -> None:
    root = _shapes(tmp_path)

    assert CocoDataModule(root / "detection", layout="auto").layout == "coco"
    with pytest.raises(ConfigError, match=r"^Config key 'data.layout' is 'yolo', but CocoDataModule reads coco data"):
        CocoDataModule(root / "detection", layout="yolo")


def test_a_box_data_module_without_a_size_takes_its_scale_times_the_median_size_in_any_layout(tmp_path: Path) -> None:
    root = write_shapes_dataset(tmp_path / "shapes", num_train=3, num_val=1, image_size=48) / "detection"

    assert CocoDataModule(root).image_size == (64, 64)  # 48 rounds to 64
    assert DetectionDataModule(root, "multitask", image_scale=2).image_size == (96, 96)
    assert DetectionDataModule(root, image_size=40, image_scale=2).image_size == (40, 40)  # a size given wins
    with pytest.raises(ConfigError, match=r"'data.image_scale' must be a number > 0 .* got float -1.0"):
        CocoDataModule(root, image_scale=-1.0)
    with pytest.raises(ConfigError, match=r"'data.layout' is 'yolo', but CocoDataModule reads coco data"):
        CocoDataModule(root, layout="yolo")  # the layout is checked before the images are read for their size


def test_coco_data_module_keeps_its_positional_order(tmp_path: Path) -> None:
    # (root, task, image_size, batch_size, num_workers): code written against the earlier signature keeps working.
    data = CocoDataModule(_shapes(tmp_path) / "detection", "multitask", 24, 3, 0)
    assert (data.task, data.image_size, data.batch_size, data.num_workers) == ("multitask", (24, 24), 3, 0)


@pytest.mark.parametrize(
    ("module", "folder"), [(ImageFolderDataModule, "classification"), (SegmentationFolderDataModule, "segmentation")]
)
def test_a_folder_module_without_a_size_takes_its_scale_times_the_median_size(tmp_path: Path, module: Any, folder: str) -> None:
    # 12 training images: at 48 px fewer leave the square class folder empty, which the classification module refuses
    root = write_shapes_dataset(tmp_path / "shapes", num_train=12, num_val=1, image_size=48) / folder

    assert module(root, image_size=None).image_size == (64, 64)  # 48 rounds to 64
    doubled = module(root, image_size=None, image_scale=2)
    assert doubled.image_size == (96, 96)
    assert doubled.image_scale == 2.0
    assert module(root, image_size=40, image_scale=2).image_size == (40, 40)  # a size given wins
    with pytest.raises(ConfigError, match=r"'data.image_scale' must be a number > 0 .* got int 0"):
        module(root, image_size=None, image_scale=0)


@pytest.mark.parametrize("tile_size", [None, 16])
def test_every_labelled_sample_is_read_once_and_without_augmentation_for_evaluation(
    tmp_path: Path, tile_size: int | None
) -> None:
    import torch
    from torchvision.transforms import v2

    root = _shapes(tmp_path) / "segmentation"
    turns = [v2.RandomRotation(180), v2.ColorJitter(brightness=0.5)]
    data = SegmentationFolderDataModule(
        root, image_size=32, batch_size=64, num_workers=0, augmentations=turns, tile_size=tile_size
    )
    data.prepare_datasets()  # as training builds them: augmented training samples
    sizes = {split: len(data.datasets[split]) for split in ("train", "validation")}

    first, second = (next(iter(data.all_dataloader())) for _ in range(2))

    assert len(data.all_dataloader().dataset) == sizes["train"] + sizes["validation"]  # no test folder: val once
    assert torch.equal(first["raw"], second["raw"])  # no random turn or jitter, no jittered tile window
    reference = SegmentationFolderDataModule(root, image_size=32, batch_size=64, num_workers=0, tile_size=tile_size)
    reference.read_for_evaluation()  # no augmentations at all; tiles at their fixed windows
    reference.prepare_datasets()
    expected = torch.stack([reference.datasets["train"][index]["raw"] for index in range(min(sizes["train"], 64))])
    assert torch.equal(first["raw"][: len(expected)], expected)


def test_every_image_is_read_once_where_data_yaml_names_one_folder_for_every_split(tmp_path: Path) -> None:
    from layouts import coco_to_yolo

    from torchbricks.lightning.datamodules import DetectionDataModule

    root = coco_to_yolo(_shapes(tmp_path) / "detection", tmp_path / "yolo")
    names = (root / "data.yaml").read_text().split("names:", 1)[1]
    every_split = "train: images/train\nval: images/train\ntest: images/train\n"
    (root / "data.yaml").write_text(f"path: {root}\n{every_split}names:{names}")
    data = DetectionDataModule(root, image_size=32, batch_size=64, num_workers=0)

    loader = data.all_dataloader()

    assert len(loader.dataset) == len(list((root / "images" / "train").glob("*.png")))  # not three times over


def test_the_split_loaders_still_serve_after_all_dataloader_built_a_pool_alone(tmp_path: Path) -> None:
    from PIL import Image

    for name in ("cat", "dog"):
        (tmp_path / "pool" / name).mkdir(parents=True)
        for index in range(5):
            Image.new("RGB", (8, 8), (index * 40, 0, 0)).save(tmp_path / "pool" / name / f"{index}.png")
    data = ImageFolderDataModule(tmp_path / "pool", image_size=8, batch_size=4, num_workers=0)

    assert len(data.all_dataloader().dataset) == 10  # the pool whole, nothing drawn
    assert len(data.val_dataloader().dataset) == 2  # then the drawn split: a fifth of each class


def test_objects_dropped_as_repeats_are_said_once_for_training_and_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from layouts import coco_to_yolo

    from torchbricks.lightning.datamodules import DetectionDataModule

    root = coco_to_yolo(_shapes(tmp_path) / "detection", tmp_path / "yolo")
    label = sorted((root / "labels" / "val").glob("*.txt"))[0]
    label.write_text(label.read_text() + label.read_text().splitlines()[0] + "\n")
    data = DetectionDataModule(root, image_size=32, batch_size=64, num_workers=0)

    data.setup("fit")
    data.prepare_datasets()  # the validation split is also the test split: read twice, said once
    data.all_dataloader()  # read again for evaluation

    printed = capsys.readouterr().out
    assert printed.count("1 object in 1 image of the 'validation' split (") == 1, printed
    assert ") repeats another of the same image exactly" in printed
    assert "'train' split" not in printed


def test_evaluation_counts_every_true_box_however_small_the_resize_makes_it(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "yolo"
    root.mkdir()
    (root / "data.yaml").write_text("names: [bird, plane]\n")
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for index in range(2):
            Image.new("RGB", (400, 400), (index * 90, 60, 30)).save(root / "images" / split / f"{index}.png")
            # a 6 px bird (0.48 px at 32 px) and a 200 px plane
            lines = ["0 0.25 0.25 0.015 0.015", "1 0.5 0.5 0.5 0.5"]
            (root / "labels" / split / f"{index}.txt").write_text("\n".join(lines) + "\n")
    data = DetectionDataModule(root, image_size=32, batch_size=4, num_workers=0)
    data.setup("fit")

    batch = next(iter(data.val_dataloader()))

    labels = batch["target_labels"]
    assert sorted(labels[labels >= 0].tolist()) == [0, 0, 1, 1]  # as the label files say
    birds = batch["target_boxes"][labels == 0]
    assert torch.allclose(birds[:, 2:] - birds[:, :2], torch.full((2, 2), 0.48))


@pytest.mark.parametrize("layout", ["splits", "pool"])
def test_an_empty_class_folder_of_the_training_images_is_refused_naming_it(
    shapes_root: Path, tmp_path: Path, layout: str
) -> None:
    # A class folder made and never filled trained a classifier with an output for a class it never saw, and the
    # metrics counted a class without a sample, without a word (check-data said "Class 'hexagon' has no example").
    root = tmp_path / "data"
    shutil.copytree(shapes_root / "classification" / ("train" if layout == "pool" else ""), root)
    training = root if layout == "pool" else root / "train"
    (training / "hexagon" / "2019").mkdir(parents=True)  # a subfolder holds no image either

    with pytest.raises(DataError, match=rf"The class folder '{training / 'hexagon'}' of the training images holds no image"):
        ImageFolderDataModule(root, image_size=16, batch_size=4, num_workers=0)
    shutil.copy(next((training / "circle").iterdir()), training / "hexagon" / "2019")
    assert ImageFolderDataModule(root, image_size=16, batch_size=4, num_workers=0).class_names[1] == "hexagon"


def _with_unused_category(root: Path, crowd: bool = False) -> None:
    """Every COCO file of `root` given the category 'hexagon' (the last id) with no object; with `crowd`, the training
    file gives it one crowd region, which training ignores."""
    for split in ("train", "val"):
        document = json.loads((root / f"{split}.json").read_text())
        category = max(category["id"] for category in document["categories"]) + 1
        document["categories"].append({"id": category, "name": "hexagon", "supercategory": "shape"})
        if crowd and split == "train":
            box = document["annotations"][0]
            document["annotations"].append({**box, "id": 10_000, "category_id": category, "iscrowd": 1})
        (root / f"{split}.json").write_text(json.dumps(document))


@pytest.mark.parametrize(("task", "crowd"), [("detection", False), ("multitask", True)])
def test_a_box_class_without_a_training_object_is_warned_of_once_and_recorded(
    shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], task: str, crowd: bool
) -> None:
    # A COCO category no training box has trained an output the model never saw trained, without a word.
    from omegaconf import OmegaConf

    from torchbricks.trained_experiment import describe_experiment

    root = Path(shutil.copytree(shapes_root / "detection", tmp_path / "detection"))
    _with_unused_category(root, crowd=crowd)

    data = DetectionDataModule(root, task=task, image_size=16, batch_size=4, num_workers=0)
    data.setup("fit")
    printed = capsys.readouterr().err
    description = describe_experiment(OmegaConf.create({"data": {"task": task}}), data)

    assert data.class_names[-1] == "hexagon"
    assert data.classes_without_training_example == ["hexagon"]
    assert description["classes_without_training_example"] == ["hexagon"]
    assert printed.count("warning: the class ['hexagon'] of") == 1, printed
    assert "has no box" in printed
    assert "in the 'train' split" in printed
    assert ("only crowd regions, which training ignores: {'hexagon': 1}" in printed) == crowd
    DetectionDataModule(shapes_root / "detection", task=task, image_size=16, batch_size=4, num_workers=0)
    assert "warning" not in capsys.readouterr().err


def test_a_yolo_name_without_a_training_box_is_warned_of(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from layouts import coco_to_yolo

    root = coco_to_yolo(
        write_shapes_dataset(tmp_path / "shapes", num_train=12, num_val=3, image_size=32) / "detection", tmp_path / "y"
    )
    (root / "data.yaml").write_text((root / "data.yaml").read_text().replace("nc: 3", "nc: 4").replace("]", ", hexagon]"))

    data = DetectionDataModule(root, image_size=16, batch_size=4, num_workers=0)

    assert data.classes_without_training_example == ["hexagon"]
    assert "warning: the class ['hexagon'] of" in capsys.readouterr().err


def test_a_segmentation_class_without_a_training_pixel_is_warned_of(
    shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(shutil.copytree(shapes_root / "segmentation", tmp_path / "segmentation"))
    (root / "classes.txt").write_text("background\ncircle\nsquare\ntriangle\nhexagon\n")

    data = SegmentationFolderDataModule(root, image_size=16, batch_size=4, num_workers=0)

    assert data.classes_without_training_example == ["hexagon"]
    printed = capsys.readouterr().err
    assert "warning: the class ['hexagon'] of" in printed
    assert "has no mask pixel in the 'train' split" in printed
    SegmentationFolderDataModule(shapes_root / "segmentation", image_size=16, batch_size=4, num_workers=0)
    assert "warning" not in capsys.readouterr().err


def test_check_files_names_every_file_that_cannot_be_read_and_says_which_images_are_read_turned(
    shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A photograph turned by half or mirrored by its EXIF orientation has the size of its stored picture, so boxes a
    # tool drew on that one were trained on without a word; files that cannot be read were found one per run, by a
    # loader, a test image's after the whole training.
    from PIL import Image

    root = tmp_path / "classification"
    shutil.copytree(shapes_root / "classification", root)
    circles = sorted((root / "train" / "circle").glob("*.png"))
    exif = Image.Exif()
    exif[0x0112] = 3  # a half turn
    with Image.open(circles[0]) as picture:
        picture.convert("RGB").rotate(180).save(circles[0].with_suffix(".jpg"), exif=exif)
    circles[0].unlink()
    data = ImageFolderDataModule(root, image_size=16, batch_size=2, num_workers=0)

    data.check_files()

    note = capsys.readouterr().err
    assert note.startswith(f"torchbricks: note: 1 image ({str(circles[0].with_suffix('.jpg'))!r}) carries")
    assert "read turned upright" in note

    for broken in circles[1:3]:
        broken.write_bytes(broken.read_bytes()[:100])
    (root / "val" / "square" / "page.png").write_text("<html>Not Found</html>")
    data = ImageFolderDataModule(root, image_size=16, batch_size=2, num_workers=0)

    expected = rf"^3 files of {re.escape(repr(str(root)))} cannot be read as training reads them"
    with pytest.raises(DataError, match=expected) as error:
        data.check_files()
    for name in (circles[1].name, circles[2].name, "page.png"):
        assert f"{name}' cannot be read" in str(error.value)


def test_check_files_says_what_check_data_says_of_turned_transparent_and_profiled_images(
    shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An image transparent everywhere (read by its colours) was noted by check-data only, and an image converted to
    # sRGB from its colour profile by neither: training said nothing of either.
    from colour_profiles import icc_profile
    from PIL import Image

    from torchbricks.datasets.checking import check_data

    root = Path(shutil.copytree(shapes_root / "classification", tmp_path / "classification"))
    circles = sorted((root / "train" / "circle").glob("*.png"))
    with Image.open(circles[0]) as picture:
        empty_alpha = picture.convert("RGBA")
    empty_alpha.putalpha(0)
    empty_alpha.save(circles[0])
    with Image.open(circles[1]) as picture:
        picture.convert("RGB").save(circles[1], icc_profile=icc_profile("display-p3"))
    exif = Image.Exif()
    exif[0x0112] = 2  # mirrored
    square = sorted((root / "val" / "square").glob("*.png"))[0]
    with Image.open(square) as picture:
        picture.convert("RGB").save(square.with_suffix(".jpg"), exif=exif)
    square.unlink()

    ImageFolderDataModule(root, image_size=16, batch_size=2, num_workers=0).check_files()

    printed = [line.removeprefix("torchbricks: note: ") for line in capsys.readouterr().err.splitlines()]
    checked = [note for note in check_data(root, task="classification").notes if str(root) in note]
    assert printed == checked
    assert len(printed) == 3
    assert printed[0].startswith(f"1 image ({str(square.with_suffix('.jpg'))!r}) carries an EXIF orientation")
    assert printed[1].startswith(f"1 image ({str(circles[0])!r}) is transparent everywhere (alpha 0)")
    assert printed[2].startswith(f"1 image ({str(circles[1])!r}) carries a colour profile other than sRGB (Display P3)")


def _palette_segmentation_data(root: Path) -> Path:
    """Segmentation data of palette masks (three classes): four training samples, three validation ones, no test
    split (the validation split is read for it too)."""
    from PIL import Image

    palette = [0, 0, 0, 200, 0, 0, 0, 200, 0]
    for split, count in (("train", 4), ("val", 3)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir()
        for index in range(count):
            Image.new("RGB", (20, 10), (index, 0, 0)).save(root / split / "images" / f"{index}.png")
            mask = Image.fromarray(np.minimum(np.arange(200).reshape(10, 20) // 60, 2).astype(np.uint8), "P")
            mask.putpalette(palette)
            mask.save(root / split / "masks" / f"{index}.png")
    (root / "classes.txt").write_text("background\ncar\nroad\n")
    return root


@pytest.mark.parametrize("image_size", [16, None])
def test_segmentation_start_up_lists_each_split_folder_once_and_opens_each_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image_size: int | None
) -> None:
    # The start-up (constructor, check_files, setup) listed each split folder three or four times (the palette check,
    # the class check, each split's reader, the validation split again for the test split) and opened each mask up to
    # five times (its palette, its size for each reader, check_files): 2,000 masks cost seconds before training. With
    # image_size=None, the size from the data listed the training images and opened them once more.
    import os
    from collections import Counter

    from PIL import Image

    from torchbricks.datasets import class_frequencies
    from torchbricks.lightning import image_datamodules

    root = _palette_segmentation_data(tmp_path / "data")
    listed = count_listings(monkeypatch)
    opened: Counter[str] = Counter()
    decoded: Counter[str] = Counter()  # masks whose pixels are read (the first mask's check, the classes found)
    real_open, real_read_mask = Image.open, image_datamodules.read_mask

    def open_file(file: Any, *arguments: Any, **keywords: Any) -> Any:
        opened[str(file if isinstance(file, str | os.PathLike) else file.name)] += 1
        return real_open(file, *arguments, **keywords)

    def read_mask(path: Path, *arguments: Any, **keywords: Any) -> Any:
        decoded[str(path)] += 1
        return real_read_mask(path, *arguments, **keywords)

    monkeypatch.setattr(Image, "open", open_file)
    for module in (image_datamodules, class_frequencies):
        monkeypatch.setattr(module, "read_mask", read_mask)

    data = SegmentationFolderDataModule(root, image_size=image_size, batch_size=2, num_workers=0)
    data.check_files()
    data.setup("fit")

    folders = [str(root / split / folder) for split in ("train", "val") for folder in ("images", "masks")]
    assert {folder: listed[folder] for folder in folders} == dict.fromkeys(folders, 1)
    files = [str(path) for path in sorted(root.glob("*/*/*.png"))]
    assert {path: opened[path] - decoded[path] for path in files} == dict.fromkeys(files, 1)
    assert len(data.datasets["validation"]) == len(data.datasets["test"]) == 3
    assert data.datasets["validation"].image_cache.megabytes > 0
    assert data.datasets["test"].image_cache.megabytes == 0  # read once: decoded as training decodes, nothing kept


def test_a_cut_short_palette_mask_is_still_named_by_check_files(tmp_path: Path) -> None:
    from torchbricks._pictures import check_image_file

    root = _palette_segmentation_data(tmp_path / "data")
    mask = root / "val" / "masks" / "1.png"
    whole = mask.read_bytes()
    mask.write_bytes(whole[: whole.index(b"IDAT") + 12])  # its header whole, its pixels cut short
    with pytest.raises(DataError) as alone:
        check_image_file(mask, alpha=False)
    data = SegmentationFolderDataModule(root, image_size=16, batch_size=2, num_workers=0)

    with pytest.raises(DataError, match=r"^1 file of .* cannot be read as training reads it") as raised:
        data.check_files()
    assert str(alone.value) in str(raised.value)


def test_the_palette_check_of_the_segmentation_start_up_decodes_no_mask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow's getpalette decodes the pixels: the palette check decoded every palette mask of every split at start-up,
    # though the palette is the PNG's PLTE chunk, read with the header.
    from collections import Counter

    from PIL import ImageFile

    from torchbricks.datasets import class_frequencies
    from torchbricks.lightning import image_datamodules

    root = _palette_segmentation_data(tmp_path / "data")
    loaded: Counter[str] = Counter()  # pixels decoded, per file
    decoded: Counter[str] = Counter()  # masks read for their classes (the first mask's check, the classes found)
    real_load, real_read_mask = ImageFile.ImageFile.load, image_datamodules.read_mask

    def load(image: Any) -> Any:
        loaded[str(getattr(image.fp, "name", None) or image.filename)] += 1  # the readers open files as file objects
        return real_load(image)

    def read_mask(path: Path, *arguments: Any, **keywords: Any) -> Any:
        decoded[str(path)] += 1
        return real_read_mask(path, *arguments, **keywords)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    for module in (image_datamodules, class_frequencies):
        monkeypatch.setattr(module, "read_mask", read_mask)

    data = SegmentationFolderDataModule(root, image_size=16, batch_size=2, num_workers=0)
    data.check_files()

    masks = [str(path) for path in sorted(root.glob("*/masks/*.png"))]
    assert {path: loaded[path] for path in masks} == {path: decoded[path] for path in masks}


def test_a_detection_validation_split_that_is_also_the_test_split_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a test split of its own, the detection modules read the validation split a second time for the test
    # split: its label files parsed and its images' headers opened again.
    from layouts import coco_to_yolo

    coco = write_shapes_dataset(tmp_path / "shapes", num_train=4, num_val=2, image_size=32) / "detection"
    root = coco_to_yolo(coco, tmp_path / "yolo")
    opened, _ = count_reads(monkeypatch)

    data = DetectionDataModule(root, image_size=32, batch_size=2, num_workers=0)
    data.check_files()
    data.setup("fit")

    assert data.split_sources()["test"] == "validation"
    for folder in ("labels", "images"):
        train, validation = ({opened[str(path)] for path in (root / folder / split).iterdir()} for split in ("train", "val"))
        assert validation == train, folder  # each file as often as a training file: not once more for the test split
        assert len(train) == 1


@pytest.mark.parametrize("layout", ["yolo", "voc"])
def test_the_size_from_yolo_and_voc_data_reads_the_training_split_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    # With image_size=None, the size from the data read the whole training split of YOLO and VOC data (its label
    # files, its images' headers) for the sizes its records hold, then the module read it again.
    import builtins
    import io
    import os
    from collections import Counter

    from layouts import coco_to_voc, coco_to_yolo

    from torchbricks.datasets.image_sizes import typical_image_size

    coco = write_shapes_dataset(tmp_path / "shapes", num_train=4, num_val=2, image_size=32) / "detection"
    root = (coco_to_yolo if layout == "yolo" else coco_to_voc)(coco, tmp_path / layout)
    opened: Counter[str] = Counter()
    real_open = builtins.open

    def open_file(file: Any, *arguments: Any, **keywords: Any) -> Any:
        if isinstance(file, str | os.PathLike):
            opened[str(file)] += 1
        return real_open(file, *arguments, **keywords)

    counts = {}
    for image_size in (32, None):
        opened.clear()
        with monkeypatch.context() as patched:
            patched.setattr(builtins, "open", open_file)
            patched.setattr(io, "open", open_file)
            data = DetectionDataModule(root, image_size=image_size, batch_size=2, num_workers=0)
            data.check_files()
            data.setup("fit")
        counts[image_size] = dict(opened)

    assert counts[None] == counts[32]  # the size from the data opens no file the start-up does not open anyway
    assert data.image_size == typical_image_size(layout, root).size


@pytest.mark.parametrize("image_size", [32, None])
@pytest.mark.parametrize("layout", ["coco", "yolo", "voc"])
def test_the_detection_start_up_opens_each_file_once_and_lists_each_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, image_size: int | None
) -> None:
    # The class names, the layout's checks and each split's reader read the same files: YOLO's data.yaml 8 times,
    # VOC's XML files 3-4 times and its ImageSets/Main lists 4 times, COCO's train.json 4 times (5 without a size).
    # Each image was opened twice (YOLO: three times): its size, then check_files for its header and for its end.
    from layouts import coco_to_voc, coco_to_yolo

    coco = write_shapes_dataset(tmp_path / "shapes", num_train=4, num_val=2, image_size=32) / "detection"
    root = {"coco": coco, "yolo": coco_to_yolo, "voc": coco_to_voc}[layout]
    if layout != "coco":
        root = root(coco, tmp_path / layout)  # type: ignore[operator]
    images = [str(path) for path in root.rglob("*.png")]
    opened, listed = count_reads(monkeypatch)

    data = DetectionDataModule(root, image_size=image_size, batch_size=2, num_workers=0)
    data.check_files()
    data.setup("fit")

    annotations = {path: count for path, count in opened.items() if Path(path).suffix not in (".png", ".jpg")}
    assert len(annotations) >= 2  # the training and validation annotations, at least
    assert annotations == dict.fromkeys(annotations, 1)
    assert {path: opened[path] for path in images} == dict.fromkeys(images, 1)  # header and end: one opening
    assert {path: count for path, count in listed.items() if count > 1} == {}
    assert data.layout == layout
    assert len(data.datasets["validation"]) == len(data.datasets["test"]) == 2


@pytest.mark.parametrize("image_size", [32, None])
def test_the_image_folder_start_up_lists_each_class_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image_size: int | None
) -> None:
    # The empty-class check and the training split's reader listed each training class folder, and with
    # image_size=None the size from the data listed them and opened their images once more.
    from PIL import Image

    root = tmp_path / "data"
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
            for index in range(2):
                Image.new("RGB", (20, 16)).save(root / split / name / f"{index}.png")
    opened, listed = count_reads(monkeypatch)

    data = ImageFolderDataModule(root, image_size=image_size, batch_size=2, num_workers=0)
    data.check_files()
    data.setup("fit")

    folders = [str(root / split / name) for split in ("train", "val") for name in ("cat", "dog")]
    assert {folder: listed[folder] for folder in folders} == dict.fromkeys(folders, 1)
    images = [str(path) for path in sorted(root.glob("*/*/*.png"))]
    assert {opened[path] for path in images} == {1}  # one opening: its header (check_files, the size) and its end
    if image_size is None:
        from torchbricks.datasets.image_sizes import typical_image_size

        assert data.image_size == typical_image_size("image_folder", root).size


@pytest.mark.parametrize("layout", ["coco", "yolo"])
def test_segmentation_from_outlines_yields_the_masks_pycocotools_draws_from_them(
    tmp_path: Path, layout: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_outline_data(tmp_path / layout, layout)

    data = OutlineSegmentationDataModule(root, image_size=OUTLINE_SIDE, batch_size=2, num_workers=0)
    data.setup("fit")

    assert data.layout == layout
    assert data.class_names == ["background", *OUTLINE_CLASSES]
    for split in ("train", "validation"):
        for index in range(4):
            sample = data.datasets[split][index]
            assert sorted(sample) == ["raw", "targets"]
            expected = expected_outline_mask(index, crowd=layout == "coco")
            assert set(np.unique(expected)) == ({0, 1, 2, 255})  # background, both classes, ignored pixels
            np.testing.assert_array_equal(sample["targets"].numpy(), expected)
    said = capsys.readouterr().out
    assert "4 objects of the 'train' split (in 4 images; 8 with an outline) have a box but no outline" in said
    assert "drawn as 255 (ignored)" in said


def test_segmentation_masks_from_outlines_are_resized_and_batched_as_the_mask_folders_are(tmp_path: Path) -> None:
    root = write_outline_data(tmp_path / "coco", "coco")
    data = OutlineSegmentationDataModule(root, image_size=16, batch_size=2, num_workers=0)

    batch = next(iter(data.val_dataloader()))

    assert batch["raw"].shape == (2, 3, 16, 16)
    assert batch["targets"].dtype == torch.int64
    expected = expected_outline_mask(0)[1::2, 1::2]  # the pixel under each output pixel's centre, as masks resize
    np.testing.assert_array_equal(batch["targets"][0].numpy(), expected)


@pytest.mark.parametrize("layout", ["coco", "yolo"])
def test_segmentation_on_box_data_without_any_outline_is_an_error_naming_the_folder_and_task_detection(
    tmp_path: Path, layout: str
) -> None:
    root = write_outline_data(tmp_path / layout, layout, outlines=False)

    with pytest.raises(DataError, match=r"^The 'train' split of .* has 12 objects in 4 images and not one outline") as caught:
        OutlineSegmentationDataModule(root, image_size=OUTLINE_SIDE, num_workers=0)
    said = str(caught.value)
    assert (
        f"box detection data, with no mask to learn. Train task=detection on it (torchbricks train task=detection "
        f"data.root={root})" in said
    )


def test_segmentation_folder_module_refuses_a_box_layout_and_outline_module_refuses_mask_folders(tmp_path: Path) -> None:
    root = _shapes(tmp_path)

    with pytest.raises(ConfigError, match=r"^Config key 'data.layout' is 'coco', but SegmentationFolderDataModule reads mask"):
        SegmentationFolderDataModule(root / "segmentation", layout="coco")
    with pytest.raises(ConfigError, match=r"holds segmentation masks in folders: read them with SegmentationFolderDataModule"):
        OutlineSegmentationDataModule(root / "segmentation")


def test_mask_folders_beside_coco_files_are_read_as_before_and_the_job_says_the_outlines_are_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _shapes(tmp_path)
    both = Path(shutil.copytree(root / "segmentation", tmp_path / "both"))
    for name in ("train.json", "val.json"):
        shutil.copy(root / "detection" / name, both / name)
    shutil.copytree(root / "detection" / "images", both / "images")
    alone = SegmentationFolderDataModule(root / "segmentation", image_size=32, num_workers=0)
    capsys.readouterr()

    data = SegmentationFolderDataModule(both, image_size=32, num_workers=0, layout="auto")

    assert data.class_names == alone.class_names
    data.setup("fit")
    alone.setup("fit")
    assert torch.equal(data.datasets["train"][0]["targets"], alone.datasets["train"][0]["targets"])
    assert "holds mask folders and COCO files: task=segmentation reads the masks and not the outlines" in capsys.readouterr().out


def _split_records(data: DetectionDataModule, split: str) -> list[Any]:
    """The records of a split of a data module, in sample order (the reader behind any lazy wrapper)."""
    dataset = data.datasets[split]
    return list(getattr(dataset, "records", None) or dataset.dataset.records)


@pytest.mark.parametrize("layout", ["coco", "yolo", "label_studio", "labelimg"])
def test_multitask_on_outlines_draws_the_masks_pycocotools_draws_and_ignores_boxes_without_outline(
    tmp_path: Path, layout: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_outline_data(tmp_path / layout, layout)

    # the size from the data: the YOLO training split read first for it is the one served, its masks drawn too
    data = DetectionDataModule(root, task="multitask", image_scale=1.0, batch_size=2, num_workers=0)
    data.setup("fit")

    assert data.image_size == (OUTLINE_SIDE, OUTLINE_SIDE)
    assert data.layout == ("coco" if layout == "coco" else "yolo")
    assert data.class_names == OUTLINE_CLASSES
    for split in ("train", "validation"):
        for index, record in enumerate(_split_records(data, split)):
            sample = data.datasets[split][index]
            objects = outline_objects(outline_image_index(record.path), crowd=layout == "coco")
            expected = expected_outline_mask(outline_image_index(record.path), crowd=layout == "coco")
            assert 255 in expected  # the box without outline (and the crowd region) ignored, as task=segmentation draws it
            np.testing.assert_array_equal(sample["target_mask"].numpy(), expected)
            outlined = [item for item in objects if "polygon" in item]
            extents = [
                [min(item["polygon"][0::2]), min(item["polygon"][1::2]), max(item["polygon"][0::2]), max(item["polygon"][1::2])]
                for item in outlined
            ]
            assert sample["target_boxes"][: len(extents)].tolist() == extents  # a polygon's box is its extent
            assert sample["target_classes"].tolist() == [1, 1]
    said = capsys.readouterr().out
    assert "have a box but no outline" in said
    assert "drawn as 255 (ignored) in the masks" in said


@pytest.mark.parametrize("layout", ["coco", "yolo"])
def test_multitask_on_box_data_without_any_outline_draws_the_boxes_as_the_masks_and_says_so(
    tmp_path: Path, layout: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_outline_data(tmp_path / layout, layout, outlines=False)

    data = DetectionDataModule(root, task="multitask", image_size=OUTLINE_SIDE, batch_size=2, num_workers=0)
    data.setup("fit")

    for split in ("train", "validation"):
        for index in range(4):
            np.testing.assert_array_equal(
                data.datasets[split][index]["target_mask"].numpy(), expected_box_mask(index, crowd=layout == "coco")
            )
    said = capsys.readouterr().out
    assert "The 'train' split has 12 objects (in 4 images) and not one outline" in said
    assert "task=multitask draws each box as its class in the masks" in said
