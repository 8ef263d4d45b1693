"""Image and mask folders however a user names their splits or leaves them out: `val`, `valid`, `validation`, a
training folder alone, or one folder of class folders (or of images and masks) split at random."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from torchbricks.datasets.checking import check_data
from torchbricks.datasets.folder_splits import folder_splits, is_pool
from torchbricks.datasets.image_sizes import read_image_sizes
from torchbricks.datasets.readers import DataError, ImageFolderDataset, SegmentationFolderDataset, segmentation_class_names
from torchbricks.lightning.image_datamodules import ImageFolderDataModule, SegmentationFolderDataModule


def _classification_pool(shapes_root: Path, out: Path) -> Path:
    """Every image of the shapes' classification splits in `out/<class>/`, named `<split>_<name>`."""
    for split in ("train", "val"):
        for image in sorted((shapes_root / "classification" / split).glob("*/*.png")):
            (out / image.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(image, out / image.parent.name / f"{split}_{image.name}")
    return out


def _segmentation_pool(shapes_root: Path, out: Path) -> Path:
    """Every image and mask of the shapes' segmentation splits in `out/images/` and `out/masks/`, with classes.txt."""
    for kind in ("images", "masks"):
        (out / kind).mkdir(parents=True)
        for split in ("train", "val"):
            for path in sorted((shapes_root / "segmentation" / split / kind).glob("*.png")):
                shutil.copy(path, out / kind / f"{split}_{path.name}")
    shutil.copy(shapes_root / "segmentation" / "classes.txt", out / "classes.txt")
    return out


def _images(dataset: ImageFolderDataset | SegmentationFolderDataset) -> list[str]:
    return sorted(str(sample[0]) for sample in dataset.samples)


def test_a_folder_of_class_folders_is_split_per_class_by_a_seeded_fraction(shapes_root: Path, tmp_path: Path) -> None:
    root = _classification_pool(shapes_root, tmp_path / "photos")
    every = sorted(str(path) for path in root.glob("*/*.png"))

    assert is_pool(root, "image_folder")
    splits = folder_splits(root, "image_folder")
    train, validation = (ImageFolderDataset(splits[name].folder, only=splits[name].only) for name in ("train", "validation"))

    assert train.class_names == validation.class_names == ["circle", "square", "triangle"]
    assert sorted(_images(train) + _images(validation)) == every  # every image once
    for index, name in enumerate(train.class_names):  # each class keeps its share: 20 % of its images, at least one
        count = len(list((root / name).glob("*.png")))
        held_out = [label for _, label in validation.samples].count(index)
        assert held_out == min(max(1, round(0.2 * count)), count - 1)
    assert splits["test"] == splits["validation"]
    assert folder_splits(root, "image_folder") == splits  # fixed by the seed
    assert folder_splits(root, "image_folder", seed=1)["validation"] != splits["validation"]
    _, count = read_image_sizes("image_folder", root)
    assert count == len(every)


@pytest.mark.parametrize("name", ["val", "valid", "validation"])
def test_the_validation_folder_may_have_any_of_its_usual_names(shapes_root: Path, tmp_path: Path, name: str) -> None:
    root = tmp_path / "data"
    shutil.copytree(shapes_root / "classification" / "train", root / "train")
    shutil.copytree(shapes_root / "classification" / "val", root / name)

    splits = folder_splits(root, "image_folder")

    assert splits["train"].folder == root / "train"
    assert splits["validation"].folder == root / name
    assert splits["train"].only is None
    assert splits["validation"].only is None
    data = ImageFolderDataModule(root, image_size=32, batch_size=4)
    data.setup()
    assert len(data.datasets["validation"]) == len(list((root / name).glob("*/*.png")))


def test_a_training_folder_alone_has_its_validation_drawn_from_it(shapes_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(shapes_root / "classification" / "train", root / "train")

    data = ImageFolderDataModule(root, image_size=32, batch_size=4, validation_fraction=0.5, split_seed=3)
    data.setup()

    train, validation = data.datasets["train"], data.datasets["validation"]
    assert not set(_images(train)) & set(_images(validation))
    assert len(train) + len(validation) == len(list((root / "train").glob("*/*.png")))
    assert len(validation) >= len(train) - 3  # half of each class
    assert data.datasets["test"] is validation or _images(data.datasets["test"]) == _images(validation)


def test_a_class_of_one_image_stays_in_training(tmp_path: Path) -> None:
    for name, count in (("cat", 5), ("dog", 1)):
        (tmp_path / name).mkdir()
        for index in range(count):
            Image.new("RGB", (8, 8), (index * 40, 0, 0)).save(tmp_path / name / f"{index}.png")

    splits = folder_splits(tmp_path, "image_folder")

    assert "dog/0.png" in (splits["train"].only or ())
    assert {path.split("/")[0] for path in splits["validation"].only or ()} == {"cat"}


def test_segmentation_images_and_masks_without_split_folders_are_split_by_a_seeded_fraction(
    shapes_root: Path, tmp_path: Path
) -> None:
    root = _segmentation_pool(shapes_root, tmp_path / "scans")

    data = SegmentationFolderDataModule(root, image_size=32, batch_size=4)
    data.setup()

    train, validation = data.datasets["train"], data.datasets["validation"]
    every = sorted(str(path) for path in (root / "images").glob("*.png"))
    assert sorted(_images(train) + _images(validation)) == every
    assert len(validation) == round(0.2 * len(every))
    assert all(mask.parent == root / "masks" and mask.stem == image.stem for image, mask in validation.samples)
    assert data.class_names == segmentation_class_names(root) == (root / "classes.txt").read_text().split()
    report = check_data(root)
    assert report.ok, report.problems
    assert (report.task, report.images) == ("segmentation", {"train": len(train), "validation": len(validation)})
    assert any("no validation folder" in note for note in report.notes)


def test_check_data_reads_a_pool_of_class_folders_and_says_validation_is_drawn(shapes_root: Path, tmp_path: Path) -> None:
    root = _classification_pool(shapes_root, tmp_path / "photos")

    report = check_data(root)

    assert report.ok, report.problems
    assert report.task == "classification"
    assert sum(report.images.values()) == len(list(root.glob("*/*.png")))
    (note,) = [note for note in report.notes if "validation" in note]
    assert "drawn at random for validation (data.validation_fraction=0.2, data.split_seed=0; check-data takes" in note


def test_a_folder_without_training_images_says_what_is_expected(tmp_path: Path) -> None:
    (tmp_path / "val" / "cat").mkdir(parents=True)

    with pytest.raises(DataError, match=r"has no training folder .*train'; expected .*/train/<class>/<image> \(validation in"):
        folder_splits(tmp_path, "image_folder")
    (tmp_path / "only" / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "only" / "cat" / "a.png")
    with pytest.raises(DataError, match=r"fewer than two images"):
        folder_splits(tmp_path / "only", "image_folder")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_torchbricks_train_runs_on_a_pool_without_split_folders(shapes_root: Path, tmp_path: Path, task: str) -> None:
    import json

    from torchbricks.__main__ import main

    make = _classification_pool if task == "classification" else _segmentation_pool
    root = make(shapes_root, tmp_path / "pool")
    arguments = [f"task={task}", f"data.root={root}", f"experiment.path_experiments={tmp_path}", "experiment.name=run"]

    status = main(["train", *arguments, "loss.class_weights=auto", "trainer.max_epochs=1", "data.batch_size=4"])

    assert status == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]
    confusion = metrics["test"].get("classification/confusion_matrix")
    if confusion is not None:  # the test split is the drawn validation split: a fifth of each class
        assert sum(map(sum, confusion)) == len(folder_splits(root, "image_folder")["validation"].only or ())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.validation_fraction=0", r"'data.validation_fraction' must be .* between 0 and 1, got int 0"),
        ("data.validation_fraction=1.5", r"'data.validation_fraction' must be .* got float 1.5"),
        ("data.split_seed=0.5", r"'data.split_seed' must be an int, got 0.5"),
    ],
)
def test_a_bad_split_setting_stops_the_job_with_one_line_naming_the_key(
    shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, message: str
) -> None:
    import re

    from torchbricks.__main__ import main

    root = _classification_pool(shapes_root, tmp_path / "pool")
    arguments = ["train", "task=classification", f"data.root={root}", f"experiment.path_experiments={tmp_path / 'runs'}"]

    assert main([*arguments, override]) == 2

    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert re.search(message, error), error
    assert not (tmp_path / "runs").exists()


def test_a_pool_of_one_image_per_class_cannot_be_split_but_is_evaluated_whole(tmp_path: Path) -> None:
    for index, name in enumerate(("cat", "dog", "eel")):
        (tmp_path / "pool" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), (index * 60, 0, 0)).save(tmp_path / "pool" / name / "only.png")
    data = ImageFolderDataModule(tmp_path / "pool", image_size=8, batch_size=4, num_workers=0)

    with pytest.raises(DataError, match=r"holds one image at most, .* no validation image can be drawn\. Add images, or a val/"):
        folder_splits(tmp_path / "pool", "image_folder")
    assert data.validation_drawn()
    batch = next(iter(data.all_dataloader()))  # every image, nothing drawn
    assert sorted(batch["targets"].tolist()) == [0, 1, 2]


def test_images_in_subfolders_of_a_class_folder_are_the_class_as_torchvision_reads_them(tmp_path: Path) -> None:
    from torchbricks.datasets.readers import ImageFolderDataset

    for split in ("train", "val"):
        for name, folders in (("cat", ["", "2019", "2019/summer"]), ("dog", ["2020"])):
            for index, sub in enumerate(folders):
                path = tmp_path / split / name / sub / f"{split}{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 8), (index * 40, 0, 0)).save(path)

    dataset = ImageFolderDataset(tmp_path / "train")

    assert [(path.relative_to(tmp_path / "train").as_posix(), label) for path, label in dataset.samples] == [
        ("cat/2019/summer/train2.png", 0), ("cat/2019/train1.png", 0), ("cat/train0.png", 0), ("dog/2020/train0.png", 1)
    ]  # fmt: skip
    pool = tmp_path / "train"  # as a pool, drawn per class with the nested images
    (tmp_path / "val").rename(tmp_path / "elsewhere")
    data = ImageFolderDataModule(pool, image_size=8, batch_size=2, validation_fraction=0.5)
    data.setup("fit")
    assert len(data.datasets["train"]) + len(data.datasets["validation"]) == 4


def test_a_class_named_like_a_split_is_a_class_of_a_pool(tmp_path: Path) -> None:
    for name in ("bus", "car", "train"):  # a pool of vehicles: `train` holds images, not class folders
        for index in range(3):
            (tmp_path / name).mkdir(exist_ok=True)
            Image.new("RGB", (8, 8), (index * 40, len(name), 0)).save(tmp_path / name / f"{index}.png")

    data = ImageFolderDataModule(tmp_path, image_size=8, batch_size=2)

    assert data.class_names == ["bus", "car", "train"]


def test_one_class_folder_is_an_error_saying_a_classifier_needs_two(tmp_path: Path) -> None:
    for index in range(3):  # a folder of images with a CSV of labels beside it, as Kaggle hands them out
        (tmp_path / "images").mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), (index * 40, 0, 0)).save(tmp_path / "images" / f"{index}.png")
    (tmp_path / "train.csv").write_text("file,label\n0.png,cat\n")

    with pytest.raises(DataError, match=r"holds one class folder, 'images'; classification needs two or more.*CSV"):
        ImageFolderDataModule(tmp_path, image_size=8)
