"""The YOLO reader on files written as Ultralytics writes and reads them (see also test_detection_layouts.py, which
reads the same shapes in every box layout)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from torchbricks.__main__ import main
from torchbricks.datasets._reading import image_files
from torchbricks.datasets.detection_layouts import detect_detection_layout, has_test_split
from torchbricks.datasets.readers import DataError
from torchbricks.datasets.yolo import YoloDataset, read_yolo_layout, unread_label_files, yolo_class_names

SPLITS = ("train", "validation", "test")


def _ultralytics(root: Path, data_yaml: str, labels: dict[str, str], size: tuple[int, int] = (640, 480)) -> Path:
    """`root/data.yaml` and, for each `<split>/<stem>` of `labels`, `images/<split>/<stem>.jpg` of `size` with its label
    file `labels/<split>/<stem>.txt`."""
    for name, lines in labels.items():
        split, stem = name.split("/")
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size).save(root / "images" / split / f"{stem}.jpg")
        (root / "labels" / split / f"{stem}.txt").write_text(lines)
    (root / "data.yaml").write_text(data_yaml)
    return root


def test_yolo_coordinates_up_to_one_percent_of_the_side_past_the_border_are_cut_to_the_image(tmp_path: Path) -> None:
    """Ultralytics accepts normalised coordinates up to 1% outside [0, 1]: 1.92 pixels past a 640-pixel side here."""
    root = _ultralytics(
        tmp_path,
        "names: [cat, dog]\n",
        {"train/a": "0 0.998 0.5 0.01 0.2\n1 0.003 0.5 0.01 0.2\n", "val/b": "0 0.5 0.5 0.2 0.2\n"},
    )

    (record,) = YoloDataset(root, "train").records

    assert [item.box for item in record.objects] == [
        pytest.approx((635.52, 192.0, 640.0, 288.0)),
        pytest.approx((0.0, 192.0, 5.12, 288.0)),
    ]


def test_yolo_coordinates_more_than_one_percent_past_the_border_are_an_error(tmp_path: Path) -> None:
    root = _ultralytics(tmp_path, "names: [cat, dog]\n", {"train/a": "0 0.5 0.5 1.03 0.2\n", "val/b": ""})

    message = r"a\.txt' line 1: '0 0\.5 0\.5 1\.03 0\.2' is outside \[0, 1\] .* \(by more than 1% of its side"
    with pytest.raises(DataError, match=message):
        YoloDataset(root, "train")


def test_a_yolo_line_of_six_numbers_is_named_as_a_prediction_with_its_confidence(tmp_path: Path) -> None:
    """Ultralytics' predict with save_txt and save_conf writes `class cx cy w h confidence`; used as labels by mistake."""
    root = _ultralytics(tmp_path, "names: [cat, dog]\n", {"train/a": "0 0.5 0.5 0.2 0.2 0.87\n", "val/b": ""})

    with pytest.raises(DataError, match=r"a\.txt' line 1: '0 0\.5 0\.5 0\.2 0\.2 0\.87' has 6 numbers: .*save_conf"):
        YoloDataset(root, "train")


@pytest.mark.parametrize("line", ["0 nan 0.5 0.2 0.2", "0 0.5 0.5 0.2 NaN", "0 0.5 0.5 inf 0.2"])
def test_a_yolo_coordinate_that_is_no_finite_number_is_an_error_naming_it(tmp_path: Path, line: str) -> None:
    """A converter that divides by an image size it did not know writes `nan`; read as a box, it would train on NaN."""
    root = _ultralytics(tmp_path, "names: [cat, dog]\n", {"train/a": f"1 0.5 0.5 0.2 0.2\n{line}\n", "val/b": ""})

    with pytest.raises(DataError, match=r"a\.txt' line 2: .* is not a class index followed by numbers: it holds '(nan|NaN|inf)'"):
        YoloDataset(root, "train")


def test_yolo_list_file_entries_may_be_relative_to_path(tmp_path: Path) -> None:
    """`train: splits/train.txt` listing `images/train/a.jpg`: relative to `path`, not to the list file's folder;
    `./images/val/b.jpg` is relative to the list file's folder (as Ultralytics reads it), an absolute path is itself."""
    root = _ultralytics(
        tmp_path,
        f"path: {tmp_path}\ntrain: splits/train.txt\nval: [splits/val.txt, {tmp_path / 'val.txt'}]\nnames: [cat, dog]\n",
        {"train/a": "1 0.5 0.5 0.2 0.2\n", "val/b": "0 0.5 0.5 0.2 0.2\n", "val/c": ""},
    )
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("images/train/a.jpg\n")
    (root / "splits" / "images" / "val").mkdir(parents=True)
    Image.new("RGB", (20, 10)).save(root / "splits" / "images" / "val" / "b.jpg")
    (root / "splits" / "val.txt").write_text("./images/val/b.jpg\n")
    (root / "val.txt").write_text(f"{root / 'images' / 'val' / 'c.jpg'}\n")

    train, validation = YoloDataset(root, "train"), YoloDataset(root, "validation")

    assert [(record.path, [item.label for item in record.objects]) for record in train.records] == [
        (root / "images" / "train" / "a.jpg", [1])
    ]
    assert [record.path for record in validation.records] == [
        root / "splits" / "images" / "val" / "b.jpg",
        root / "images" / "val" / "c.jpg",
    ]


def test_a_yolo_validation_key_names_the_validation_split_and_nc_alone_names_the_classes(tmp_path: Path) -> None:
    """As Ultralytics reads data.yaml: `validation:` for `val:`, and `nc` without `names` gives class_0, class_1, ..."""
    root = _ultralytics(
        tmp_path,
        "train: images/train\nvalidation: images/valid\nnc: 2\n",
        {"train/a": "1 0.5 0.5 0.2 0.2\n", "train/b": "", "valid/c": "0 0.5 0.5 0.2 0.2\n"},
    )

    validation = YoloDataset(root, "validation")

    assert yolo_class_names(root) == ["class_0", "class_1"]
    assert [record.path.name for record in validation.records] == ["c.jpg"]
    assert [record.path.name for record in YoloDataset(root, "train").records] == ["a.jpg", "b.jpg"]


def test_an_empty_yolo_split_entry_names_no_split_rather_than_every_image_of_the_folder(tmp_path: Path) -> None:
    """Read as a path, `test: ''` is the data folder itself: a test split of every training and validation image."""
    labels = {"train/a": "0 0.5 0.5 0.2 0.2\n", "val/b": "0 0.5 0.5 0.2 0.2\n"}
    root = _ultralytics(tmp_path, "names: [cat]\ntrain: images/train\nval: ''\ntest: ''\n", labels)

    assert read_yolo_layout(root).splits["validation"] == [root / "images" / "val"]
    assert not has_test_split(root, "yolo")


def test_a_label_file_named_as_its_image_but_for_case_is_an_error_not_an_image_without_objects(tmp_path: Path) -> None:
    """Labelled on Windows or macOS, whose file names ignore case, `IMG_1.jpg` finds `img_1.txt`; on Linux it would not."""
    root = _ultralytics(tmp_path, "names: [cat]\n", {"train/IMG_1": "0 0.5 0.5 0.2 0.2\n", "val/b": ""})
    (root / "labels" / "train" / "IMG_1.txt").rename(root / "labels" / "train" / "img_1.txt")

    with pytest.raises(DataError, match=r"IMG_1\.jpg' has no label file '.*IMG_1\.txt', but '.*img_1\.txt' differs from it"):
        YoloDataset(root, "train")


@pytest.mark.parametrize("names", ["[cat, no]", "{0: cat, 1: on}", "[cat, null]"])
def test_a_yolo_class_name_yaml_reads_as_a_boolean_or_nothing_is_an_error_saying_to_quote_it(tmp_path: Path, names: str) -> None:
    """YAML 1.1 reads `no` as False: the class would be named 'False' in every report."""
    root = _ultralytics(tmp_path, f"names: {names}\n", {"train/a": "1 0.5 0.5 0.2 0.2\n", "val/b": ""})

    with pytest.raises(DataError, match=r"data\.yaml' has 'names' .*: YAML reads an unquoted yes, no, .* Quote the class"):
        yolo_class_names(root)


def test_darknet_yolo_reads_every_subset_cvat_writes_whatever_its_case(tmp_path: Path) -> None:
    """CVAT's "YOLO 1.1" export of a project with the subsets Train, Validation and Test: a `<subset> = data/<subset>.txt`
    line in obj.data for each, its images and label files in `obj_<subset>_data/`."""
    for subset, count in (("Train", 2), ("Validation", 1), ("Test", 1)):
        folder = tmp_path / f"obj_{subset}_data"
        folder.mkdir()
        for index in range(count):
            Image.new("RGB", (20, 10)).save(folder / f"{subset}{index}.jpg")
            (folder / f"{subset}{index}.txt").write_text(f"{index} 0.500000 0.500000 0.200000 0.200000\n")
        listed = "".join(f"data/obj_{subset}_data/{subset}{index}.jpg\n" for index in range(count))
        (tmp_path / f"{subset}.txt").write_text(listed)
    (tmp_path / "obj.names").write_text("cat\ndog\n")
    (tmp_path / "obj.data").write_text(
        "classes = 2\nTrain = data/Train.txt\nValidation = data/Validation.txt\nTest = data/Test.txt\n"
        "names = data/obj.names\nbackup = backup/\n"
    )

    names = {split: [record.path.name for record in YoloDataset(tmp_path, split).records] for split in SPLITS}

    assert names == {"train": ["Train0.jpg", "Train1.jpg"], "validation": ["Validation0.jpg"], "test": ["Test0.jpg"]}
    assert not read_yolo_layout(tmp_path).drawn


def test_darknet_yolo_without_a_training_subset_names_the_subsets_it_found(tmp_path: Path) -> None:
    (tmp_path / "obj.names").write_text("cat\n")
    (tmp_path / "obj.data").write_text("classes = 1\nSubset1 = data/Subset1.txt\nnames = data/obj.names\n")

    with pytest.raises(DataError, match=r"has no 'train' subset in obj\.data \(it lists \['Subset1'\]\) nor obj_train_data/"):
        read_yolo_layout(tmp_path)


def test_a_label_line_written_twice_is_read_once_so_a_perfect_prediction_scores_a_map_of_one(tmp_path: Path) -> None:
    """Labelling tools and merges write a line twice (here once as `1.0`, as converters writing floats do); kept, the
    repeat is a ground truth no detection can match (mAP 0.5 here) and a box trained on twice."""
    import torch

    from torchbricks.bag_of_bricks.object_detection import BoxMeanAveragePrecision

    lines = "0 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.1\n0 0.5 0.5 0.2 0.2\n1.0 0.25 0.25 0.1 0.1\n0 0.5 0.5 0.2 0.4\n"
    root = _ultralytics(tmp_path, "names: [cat, dog]\n", {"train/a": lines, "val/b": ""}, size=(64, 48))
    dataset = YoloDataset(root, "train")

    sample = dataset[0]
    metric = BoxMeanAveragePrecision()
    boxes, labels = sample["target_boxes"][None], sample["target_labels"][None]
    metric.update(boxes, torch.ones(labels.shape), labels, boxes, labels)

    assert metric.compute()["map_50"].item() == 1.0
    assert labels.tolist() == [[0, 1, 0]]  # the taller box of class 0 is another object
    assert dataset.duplicates == {root / "images" / "train" / "a.jpg": 2}


@pytest.mark.parametrize("names_file", ["classes.txt", "obj.names"])
def test_an_empty_line_before_a_class_name_is_an_error_naming_the_file_and_line(tmp_path: Path, names_file: str) -> None:
    # Darknet numbers the classes by line: 'dog' on line 3 is class 2, which skipping the empty line made 'bird'
    (tmp_path / names_file).write_text("cat\n\ndog\nbird\n\n")  # the empty lines at the end are no class
    for index in range(2):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{index}.png")
        (tmp_path / f"{index}.txt").write_text("2 0.5 0.5 0.5 0.5\n")

    with pytest.raises(DataError, match=rf"{names_file}' line 2 is empty: .*'dog' on line 3 would be class 2"):
        yolo_class_names(tmp_path)


def test_empty_lines_after_the_last_class_name_are_no_classes(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("cat\r\ndog \r\n\r\n\r\n")  # Windows line ends, a trailing space
    for index in range(2):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{index}.png")

    assert yolo_class_names(tmp_path) == ["cat", "dog"]


def test_a_training_split_without_a_single_label_file_is_an_error_naming_where_they_were_looked_for(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("names: [cat, dog]\n")
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "Labels" / split).mkdir(parents=True)  # as a copy from Windows may capitalise it
        for index in range(3):
            Image.new("RGB", (8, 8)).save(tmp_path / "images" / split / f"{index}.png")
            (tmp_path / "Labels" / split / f"{index}.txt").write_text("0 0.5 0.5 0.5 0.5\n")

    with pytest.raises(
        DataError, match=r"split 'train' has 3 images and not one label file: .*labels/train/0\.txt'.*\['Labels', 'images'\]"
    ):
        YoloDataset(tmp_path, "train")


def test_a_validation_split_without_a_single_label_file_is_an_error_and_one_of_empty_label_files_is_read(
    tmp_path: Path,
) -> None:
    # A validation (or test) split whose labels were not copied read as images without objects: its mAP was measured
    # against no true box without a word. Images without objects say so with empty label files.
    _ultralytics(tmp_path, "names: [cat]\n", {"train/a": "0 0.5 0.5 0.5 0.5\n", "val/b": "", "val/c": ""})
    (tmp_path / "labels" / "val" / "b.txt").rename(tmp_path / "b.txt")
    (tmp_path / "labels" / "val" / "c.txt").unlink()

    with pytest.raises(
        DataError, match=r"split 'validation' has 2 images and not one label file: .*its mAP would be measured against no"
    ):
        YoloDataset(tmp_path, "validation")
    (tmp_path / "b.txt").rename(tmp_path / "labels" / "val" / "b.txt")
    assert [len(YoloDataset(tmp_path, "validation")[index]["target_labels"]) for index in range(2)] == [0, 0]


def test_a_drawn_validation_split_without_a_label_file_names_a_split_seed_that_draws_one(tmp_path: Path) -> None:
    # A labelImg pool where few images have a label file: the validation split drawn at random can miss all of them.
    # The refusal said to put label files where they already were; it now names seeds whose draw takes some.
    import re

    (tmp_path / "classes.txt").write_text("cat\n")
    for index in range(10):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{index}.png")
    drawn = read_yolo_layout(tmp_path, 0.2, 0).splits["validation"]
    for image in sorted(set(image_files(tmp_path)) - set(drawn))[:2]:
        image.with_suffix(".txt").write_text("0 0.5 0.5 0.5 0.5\n")

    refused = r"drawn at random from the 10 training images .*data.split_seed=0\), of which 2 have a label file"
    with pytest.raises(DataError, match=refused) as error:
        YoloDataset(tmp_path, "validation", validation_fraction=0.2, seed=0)
    seeds = re.search(r"data.split_seed=([\d, ]+) draws? some", str(error.value))
    assert seeds is not None, str(error.value)
    for seed in seeds.group(1).split(", "):
        dataset = YoloDataset(tmp_path, "validation", validation_fraction=0.2, seed=int(seed))
        assert any(len(dataset[index]["target_labels"]) for index in range(len(dataset)))


def test_a_box_wholly_past_the_border_within_the_tolerance_is_an_error_not_an_empty_true_box(tmp_path: Path) -> None:
    # 1.005 - 0.01 / 2 is 0.99999999999999: cut to its image, the box was 1e-14 px wide, a true box no detection matches
    (tmp_path / "classes.txt").write_text("cat\n")
    for index in range(2):
        Image.new("RGB", (100, 80)).save(tmp_path / f"{index}.png")
        (tmp_path / f"{index}.txt").write_text("0 0.5 0.5 0.2 0.2\n0 1.005 0.5 0.01 0.1\n")

    with pytest.raises(DataError, match=r"[01].txt' line 2: '0 1.005 0.5 0.01 0.1' is outside \[0, 1\] .* or wholly\), or empty"):
        YoloDataset(tmp_path, "train")


@pytest.mark.parametrize("tool", ["darknet", "labelimg"])
def test_a_label_file_beside_the_images_without_its_image_is_found(tmp_path: Path, tool: str) -> None:
    # Label files kept beside their images (Darknet's obj_train_data/, labelImg) were never looked at, so the label file
    # of a deleted image went unnoticed; the lists, classes.txt and notes there are not label files.
    folder = tmp_path / "obj_train_data" if tool == "darknet" else tmp_path
    folder.mkdir(exist_ok=True)
    for stem in ("a", "b", "c"):
        Image.new("RGB", (8, 8)).save(folder / f"{stem}.png")
        (folder / f"{stem}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (folder / "deleted.txt").write_text("1 0.5 0.5 0.2 0.2\n0 0.1 0.1 0.1 0.1 0.2 0.2\n")  # a box and a polygon
    (folder / "notes.txt").write_text("labelled by Ada, 2024\n")
    (folder / "empty.txt").write_text("")
    if tool == "darknet":
        (tmp_path / "obj.names").write_text("cat\ndog\n")
        (tmp_path / "train.txt").write_text("".join(f"data/obj_train_data/{stem}.png\n" for stem in "abc"))
        (folder / "valid.txt").write_text("data/obj_train_data/a.png\n")  # a list kept beside the images
        settings = "classes = 2\ntrain = train.txt\nvalid = obj_train_data/valid.txt\nnames = obj.names\n"
        (tmp_path / "obj.data").write_text(settings)
    else:
        (tmp_path / "classes.txt").write_text("cat\ndog\n")

    assert unread_label_files(read_yolo_layout(tmp_path)) == [folder / "deleted.txt"]


@pytest.mark.parametrize("file_name", ["dataset.yaml", "data.yml"])
def test_the_ultralytics_data_file_named_dataset_yaml_is_read_as_data_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], file_name: str
) -> None:
    """Ultralytics takes any file (`yolo train data=dataset.yaml`, as its guides name it): the folder was refused as
    one without class names, though its file named them."""
    root = _ultralytics(
        tmp_path,
        "path: .\ntrain: images/train\nval: images/val\nnames:\n  0: cat\n  1: dog\n",
        {"train/a": "1 0.25 0.5 0.1 0.2\n0 0.5 0.5 0.5 0.5\n", "val/b": "0 0.5 0.5 0.5 0.5\n"},
    )
    Image.new("RGB", (640, 480), "white").save(root / "images" / "val" / "b.jpg")  # not a copy of the training image
    (root / "data.yaml").rename(root / file_name)

    assert detect_detection_layout(root) == "yolo"
    assert yolo_class_names(root) == ["cat", "dog"]
    objects = [(item.label, item.box) for item in YoloDataset(root, "train").records[0].objects]
    assert objects == [  # (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2) times the image's width and height
        (1, pytest.approx((0.2 * 640, 0.4 * 480, 0.3 * 640, 0.6 * 480))),
        (0, pytest.approx((0.25 * 640, 0.25 * 480, 0.75 * 640, 0.75 * 480))),
    ]
    assert main(["check-data", str(root)]) == 0, capsys.readouterr().out


def test_two_ultralytics_data_files_that_differ_are_an_error_naming_both(tmp_path: Path) -> None:
    root = _ultralytics(tmp_path, "names: [cat, dog]\n", {"train/a": "1 0.25 0.5 0.1 0.2\n", "val/b": ""})
    (root / "dataset.yaml").write_text("names: [dog, cat]\n")

    with pytest.raises(DataError, match=r"has both data\.yaml and dataset\.yaml, and they differ"):
        yolo_class_names(root)
    (root / "dataset.yaml").write_text("names:\n  - cat\n  - dog\n")  # the same, written otherwise
    assert yolo_class_names(root) == ["cat", "dog"]


def test_a_folder_without_a_class_list_names_the_yaml_files_it_holds(tmp_path: Path) -> None:
    root = _ultralytics(tmp_path, "names: [cat]\n", {"train/a": "0 0.5 0.5 0.1 0.2\n", "val/b": ""})
    (root / "data.yaml").rename(root / "coco8.yaml")

    with pytest.raises(DataError, match=r"It holds \['coco8\.yaml'\]: name the one with 'names' data\.yaml\."):
        yolo_class_names(root)


def _label_studio_export(root: Path, categories: list[dict[str, object]], lines: str, images: int = 5) -> Path:
    """Label Studio's YOLO export as its converter writes it: `images/*`, `labels/*.txt`, `classes.txt` (the
    categories' names in the order of the list) and `notes.json` (the list, ids and names)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for index in range(images):
        Image.new("RGB", (200, 100), (40 * index, 0, 0)).save(root / "images" / f"{index:08x}-photo{index}.jpg")
        (root / "labels" / f"{index:08x}-photo{index}.txt").write_text(lines)
    (root / "classes.txt").write_text("".join(f"{category['name']}\n" for category in categories))
    notes = {"categories": categories, "info": {"year": 2026, "version": "1.0", "contributor": "Label Studio"}}
    (root / "notes.json").write_text(json.dumps(notes, indent=2))
    return root


def test_label_studio_classes_are_read_by_their_ids_in_notes_json_not_by_the_order_of_classes_txt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A labelling config whose label `cat` has `category="1"` (and `dog` none): Label Studio's converter lists the
    categories with a category first, [cat: 1, dog: 0], writes classes.txt in that order and numbers the label lines
    by id. Read by classes.txt, every dog was a cat and every cat a dog, without a word."""
    categories: list[dict[str, object]] = [{"id": 1, "name": "cat"}, {"id": 0, "name": "dog"}]
    root = _label_studio_export(tmp_path, categories, "0 0.25 0.5 0.1 0.2\n1 0.75 0.5 0.1 0.2\n")  # a dog, a cat

    names = yolo_class_names(root)
    objects = [(names[item.label], item.box) for item in YoloDataset(root, "train").records[0].objects]

    assert objects == [("dog", pytest.approx((40.0, 40.0, 60.0, 60.0))), ("cat", pytest.approx((140.0, 40.0, 160.0, 60.0)))]
    assert main(["check-data", str(root)]) == 0
    printed = capsys.readouterr().out
    assert "read by id from Label Studio's" in printed
    assert "its classes.txt lists them as ['cat', 'dog']" in printed


def test_label_studio_notes_json_alone_names_the_classes_and_one_that_disagrees_with_classes_txt_is_an_error(
    tmp_path: Path,
) -> None:
    categories: list[dict[str, object]] = [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]
    root = _label_studio_export(tmp_path, categories, "1 0.5 0.5 0.1 0.2\n")
    (root / "classes.txt").unlink()
    assert yolo_class_names(root) == ["cat", "dog"]

    (root / "classes.txt").write_text("cat\nbird\n")
    with pytest.raises(DataError, match=r"classes\.txt' lists the classes \['cat', 'bird'\], but .*notes\.json'.*names"):
        yolo_class_names(root)


def test_label_studio_category_ids_that_skip_a_class_index_are_an_error_naming_notes_json(tmp_path: Path) -> None:
    root = _label_studio_export(tmp_path, [{"id": 5, "name": "cat"}, {"id": 0, "name": "dog"}], "5 0.5 0.5 0.1 0.2\n")

    with pytest.raises(DataError, match=r"notes\.json' numbers its categories \[0, 5\]; the label files number"):
        yolo_class_names(root)


def test_a_notes_json_of_ones_own_beside_classes_txt_is_not_read(tmp_path: Path) -> None:
    root = _label_studio_export(tmp_path, [{"id": 0, "name": "cat"}], "0 0.5 0.5 0.1 0.2\n")
    (root / "notes.json").write_text('{"todo": ["relabel the blurry ones"]}')

    assert yolo_class_names(root) == ["cat"]


def test_a_labelimg_folder_reads_the_images_of_its_labelled_subfolders_and_names_the_unlabelled_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # labelImg labels a folder at a time, so a project keeps a folder per day or camera beside classes.txt: only the
    # images directly in the data folder were read, the subfolders' images and boxes left out without a word
    # (8 of 40 images and 9 of 45 boxes of a scratch data set). A subfolder without any label file is not labelled.
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    labelled = tmp_path / "day2" / "cam1"
    labelled.mkdir(parents=True)
    unlabelled = tmp_path / "to_label"
    unlabelled.mkdir()
    for index, folder in enumerate([tmp_path, tmp_path, labelled, labelled, unlabelled]):
        Image.new("RGB", (40, 20), (index * 50, 0, 0)).save(folder / f"img_{index}.JPG")
        if folder != unlabelled:
            (folder / f"img_{index}.txt").write_text("1 0.5 0.5 0.5 0.5\r\n0 0.2 0.2 0.2 0.2\r\n\r\n" if index != 3 else "")

    layout = read_yolo_layout(tmp_path)
    records = [record for split in ("train", "validation") for record in YoloDataset(tmp_path, split).records]

    assert sorted(record.path.relative_to(tmp_path).as_posix() for record in records) == [
        "day2/cam1/img_2.JPG",
        "day2/cam1/img_3.JPG",
        "img_0.JPG",
        "img_1.JPG",
    ]
    assert sorted(len(record.objects) for record in records) == [0, 2, 2, 2]
    assert layout.notice is not None
    assert "1 image in 1 subfolder" in layout.notice
    assert repr(str(unlabelled)) in layout.notice
    status = main(["check-data", str(tmp_path)])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert f"Note: {layout.notice}" in printed


@pytest.mark.parametrize(
    ("names", "entry"), [("[cat, '']", "1 ''"), ("[[cat], dog]", "0 ['cat']"), ("{0: cat, 1: ' '}", "1 ' '")]
)
def test_a_data_yaml_class_name_that_is_empty_or_a_list_is_an_error_naming_it(tmp_path: Path, names: str, entry: str) -> None:
    # read as the classes '' and "['cat']": a class no report could show, and one named by its Python spelling
    _ultralytics(tmp_path, f"names: {names}\n", {"train/a": "1 0.5 0.5 0.2 0.2\n", "val/b": ""})

    with pytest.raises(DataError, match=rf"has 'names' entry {re.escape(entry)}; expected a class name"):
        yolo_class_names(tmp_path)


def test_a_labelimg_subfolder_whose_classes_txt_lists_other_classes_is_an_error_naming_both(tmp_path: Path) -> None:
    # labelImg writes a classes.txt into each folder it saves in, from that session's class list: read by the data
    # folder's list, the subfolder's label lines (class 0 = dog there) would name the other class
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    (tmp_path / "day2").mkdir()
    for index, folder in enumerate([tmp_path, tmp_path, tmp_path / "day2"]):
        Image.new("RGB", (40, 20), (index * 50, 0, 0)).save(folder / f"img_{index}.jpg")
        (folder / f"img_{index}.txt").write_text("0 0.5 0.5 0.5 0.5\n1 0.2 0.2 0.2 0.2\n")
    (tmp_path / "day2" / "classes.txt").write_text("cat\ndog\n")
    assert len(read_yolo_layout(tmp_path).pool or []) == 3  # the same list: read

    (tmp_path / "day2" / "classes.txt").write_text("dog\ncat\n")
    with pytest.raises(DataError, match=r"day2/classes.txt' lists the classes \['dog', 'cat'\], .* \['cat', 'dog'\]"):
        read_yolo_layout(tmp_path)


def test_a_darknet_list_written_on_windows_is_read_with_its_backslashes_as_separators(tmp_path: Path) -> None:
    # data\obj_train_data\a.jpg, as a list written on Windows names it: every image 'did not exist'
    (tmp_path / "obj_train_data").mkdir()
    for stem in ("a", "b", "c"):
        Image.new("RGB", (8, 8)).save(tmp_path / "obj_train_data" / f"{stem}.jpg")
        (tmp_path / "obj_train_data" / f"{stem}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "obj.names").write_text("cat\n")
    (tmp_path / "obj.data").write_text("classes = 1\ntrain = data/train.txt\nvalid = data/valid.txt\nnames = data/obj.names\n")
    (tmp_path / "train.txt").write_bytes(b"data\\obj_train_data\\a.jpg\r\ndata\\obj_train_data\\b.jpg\r\n")
    (tmp_path / "valid.txt").write_bytes(b"data\\obj_train_data\\c.jpg\r\n")

    paths = {split: [record.path for record in YoloDataset(tmp_path, split).records] for split in ("train", "validation")}

    assert paths == {
        "train": [tmp_path / "obj_train_data" / "a.jpg", tmp_path / "obj_train_data" / "b.jpg"],
        "validation": [tmp_path / "obj_train_data" / "c.jpg"],
    }


def test_a_data_yaml_written_on_windows_is_read_with_its_backslashes_as_separators(tmp_path: Path) -> None:
    # train: images\train, as a data.yaml written by hand on Windows names it: 'does not exist'
    root = _ultralytics(
        tmp_path,
        "train: images\\train\nval: images\\val\nnames: [cat, dog]\n",
        {"train/a": "1 0.5 0.5 0.2 0.2\n", "val/b": "0 0.5 0.5 0.2 0.2\n"},
    )

    assert [record.path for record in YoloDataset(root, "train").records] == [root / "images" / "train" / "a.jpg"]


def test_data_yaml_class_names_are_read_without_the_spaces_around_them(tmp_path: Path) -> None:
    # 'cat ' was a class of its own, which no `cat` of another file or of a config matched
    _ultralytics(tmp_path, "names: ['cat ', ' dog']\n", {"train/a": "1 0.5 0.5 0.2 0.2\n", "val/b": ""})

    assert yolo_class_names(tmp_path) == ["cat", "dog"]


@pytest.mark.parametrize("names", ["[cat, 'cat ']", "{0: cat, 1: 'cat '}"])
def test_data_yaml_class_names_equal_but_for_spaces_are_an_error_naming_both(tmp_path: Path, names: str) -> None:
    _ultralytics(tmp_path, f"names: {names}\n", {"train/a": "1 0.5 0.5 0.2 0.2\n", "val/b": ""})

    message = r"data\.yaml' 'names' has entry 0 'cat' and entry 1 'cat ': the same class name 'cat' but for the spaces"
    with pytest.raises(DataError, match=message):
        yolo_class_names(tmp_path)


@pytest.mark.parametrize("names_file", ["classes.txt", "obj.names"])
def test_class_list_lines_equal_but_for_spaces_are_an_error_naming_both_lines(tmp_path: Path, names_file: str) -> None:
    # read as ['cat', 'dog', 'cat']: two classes of one name, the labels of class 2 reported as a second 'cat'
    (tmp_path / names_file).write_text("cat\ndog\ncat \n")
    Image.new("RGB", (8, 8)).save(tmp_path / "0.png")
    (tmp_path / "0.txt").write_text("2 0.5 0.5 0.5 0.5\n")

    with pytest.raises(DataError, match=rf"{names_file}' has line 1 'cat' and line 3 'cat ': the same class name 'cat'"):
        yolo_class_names(tmp_path)


def test_label_studio_category_names_are_read_without_the_spaces_around_them(tmp_path: Path) -> None:
    root = _label_studio_export(tmp_path, [{"id": 0, "name": "cat "}, {"id": 1, "name": "dog"}], "1 0.5 0.5 0.1 0.2\n")
    assert yolo_class_names(root) == ["cat", "dog"]  # classes.txt 'cat ' and notes.json 'cat ' agree

    (root / "notes.json").write_text(json.dumps({"categories": [{"id": 0, "name": "cat"}, {"id": 1, "name": " cat"}]}))
    (root / "classes.txt").unlink()
    with pytest.raises(DataError, match=r"notes\.json' has category id 0 'cat' and category id 1 ' cat': the same"):
        yolo_class_names(root)


@pytest.mark.parametrize("names_file", ["classes.txt", "obj.names"])
def test_class_list_lines_numbered_by_their_index_name_the_classes_after_the_numbers(
    tmp_path: Path, names_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # some exporters write `0 red`: read as the class '0 red', which no label, config or other file names
    (tmp_path / names_file).write_text("0 red blood cell\n1 white\n2 platelet\n")
    images = tmp_path / "obj_train_data" if names_file == "obj.names" else tmp_path  # CVAT's, labelImg's
    images.mkdir(exist_ok=True)
    for index in range(5):
        Image.new("RGB", (8, 8)).save(images / f"{index}.png")
        (images / f"{index}.txt").write_text("2 0.5 0.5 0.5 0.5\n")

    layout = read_yolo_layout(tmp_path)

    assert layout.class_names == ["red blood cell", "white", "platelet"]
    assert layout.notice is not None
    assert f"{names_file}' begins each line with its class index ('0 red blood cell')" in layout.notice
    main(["check-data", str(tmp_path)])  # its problems: five black images, two classes unlabelled
    assert f"Note: {layout.notice}" in capsys.readouterr().out


@pytest.mark.parametrize("lines", ["1 red\n2 white\n", "0 red\nwhite\n", "0 red\n0 white\n", "2 red\n"])
def test_class_list_lines_not_each_numbered_by_its_index_are_read_as_written(tmp_path: Path, lines: str) -> None:
    (tmp_path / "classes.txt").write_text(lines)
    for index in range(2):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{index}.png")
        (tmp_path / f"{index}.txt").write_text("0 0.5 0.5 0.5 0.5\n")

    layout = read_yolo_layout(tmp_path, validation_fraction=0.5)

    assert layout.class_names == lines.splitlines()
    assert layout.notice is None
