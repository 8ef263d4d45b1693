"""`torchbricks check-data DIR`: a clean folder exits 0 with its counts; a folder with several problems exits 1 and lists
every one of them (the readers collect instead of raising)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from layouts import OUTLINE_CLASSES, coco_to_voc, coco_to_yolo, expected_outline_mask, voc_xml, write_outline_data
from PIL import Image

from torchbricks.__main__ import main
from torchbricks.datasets.checking import check_data
from torchbricks.datasets.shapes import write_shapes_dataset


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes", num_train=8, num_val=4, image_size=32)


def _copy(shapes: Path, layout: str, tmp_path: Path) -> Path:
    if layout == "yolo":
        return coco_to_yolo(shapes / "detection", tmp_path / "yolo")
    if layout == "voc":
        return coco_to_voc(shapes / "detection", tmp_path / "voc")
    return Path(shutil.copytree(shapes / layout, tmp_path / layout))


def _check(root: Path, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
    status = main(["check-data", str(root), *options])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


@pytest.mark.parametrize(
    ("layout", "task"),
    [("detection", "detection"), ("yolo", "detection"), ("voc", "detection"), ("segmentation", "segmentation")],
)
def test_a_clean_folder_exits_0_with_images_and_instances_per_class_and_split(
    shapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str, task: str
) -> None:
    root = _copy(shapes, layout, tmp_path)

    status, printed = _check(root, capsys)

    assert status == 0, printed
    assert "No problem found." in printed
    assert f": {task}, " in printed
    reference = json.loads((shapes / "detection" / "train.json").read_text())
    if task == "detection":  # the counts are the COCO file's, whatever the layout
        assert f"train       (all)          8  {len(reference['annotations']):>9}" in printed
        report = check_data(root)
        assert sum(instances for _, instances in report.counts["train"].values()) == len(reference["annotations"])
        assert report.images == {"train": 8, "validation": 4}


def test_the_folder_is_also_taken_as_train_takes_it_and_an_option_first_is_named(
    shapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(shapes, "segmentation", tmp_path)

    status, printed = _check(Path(f"data.root={root}"), capsys, "task=segmentation")  # copied from a train command
    assert status == 0, printed
    assert "No problem found." in printed
    status, printed = _check(Path("task=segmentation"), capsys, str(root))
    assert status == 2
    assert "check-data takes the data folder first" in printed
    assert "got 'task=segmentation' first" in printed


def test_a_box_folder_with_several_problems_exits_1_and_lists_them_all(
    shapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(shapes, "yolo", tmp_path)
    labels = sorted((root / "labels" / "train").glob("*.txt"))
    labels[0].write_text("0 0.5 0.5 0.2\n")  # malformed
    labels[1].write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n")  # class out of range on line 2
    labels[2].write_text("1 1.5 0.5 0.2 0.2\n")  # outside the image
    (root / "images" / "train" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # fails to decode
    image = sorted((root / "images" / "train").glob("0*.png"))[3]
    shutil.copy(image, root / "images" / "val" / "copy.png")  # the same picture in two splits
    truncated = sorted((root / "images" / "val").glob("0*.png"))[0]
    truncated.write_bytes(truncated.read_bytes()[:200])  # its header reads, its pixels do not decode

    status, printed = _check(root, capsys)

    assert status == 1
    expected = [
        rf"{labels[0].name}' line 1: '0 0.5 0.5 0.2' is not 'class cx cy w h'",
        rf"{labels[1].name}' line 2: class 7 is out of range",
        rf"{labels[2].name}' line 1: '1 1.5 0.5 0.2 0.2' is outside \[0, 1\]",
        r"broken\.png' cannot be read",
        rf"{image.name}' \(train\) and .*copy\.png' \(validation\) have identical pixels",
        rf"{truncated.name}' cannot be decoded",
    ]
    for pattern in expected:
        assert any(re.search(pattern, line) for line in printed.splitlines()), pattern
    assert "6 problems:" in printed


def test_coco_and_voc_problems_are_all_listed(shapes: Path, tmp_path: Path) -> None:
    root = _copy(shapes, "detection", tmp_path)
    document = json.loads((root / "train.json").read_text())
    document["images"][0]["file_name"] = "images/train/gone.png"
    document["images"][1]["width"] = 64  # the file is 32 wide
    document["annotations"][-1]["bbox"] = [30, 0, 10, 10]
    document["annotations"][-2]["category_id"] = 99
    (root / "train.json").write_text(json.dumps(document))
    voc = _copy(shapes, "voc", tmp_path)
    (voc / "Annotations" / "val_00000.xml").write_text("<annotation>")
    (voc / "Annotations" / "val_00001.xml").write_text(voc_xml("val_00001.png", 32, 32, [("horse", [1, 1, 4, 4], False)]))
    (voc / "JPEGImages" / "val_00002.png").unlink()

    coco_problems = check_data(root).problems
    voc_problems = check_data(voc).problems

    assert len(coco_problems) == 4, coco_problems
    assert "gone.png' (id 1 in" in coco_problems[0]
    assert "has category_id 99" in coco_problems[1]
    assert "has bbox [x, y, w, h] = [30, 0, 10, 10], outside" in coco_problems[2]
    assert "is 32x32;" in coco_problems[3]
    assert "says 64x32" in coco_problems[3]
    assert len(voc_problems) == 3, voc_problems
    assert "val_00000.xml' cannot be read as XML" in voc_problems[0]
    assert "val_00001.xml' has an object 'horse', not a class of the train split" in voc_problems[1]
    assert "val_00002.png' of the VOC file" in voc_problems[2]


def test_every_bad_voc_file_of_a_pool_is_listed_at_once(shapes: Path, tmp_path: Path) -> None:
    voc = coco_to_voc(shapes / "detection", tmp_path / "flat", flat=True)  # labelImg: classes from every XML file
    xml = sorted(voc.glob("*.xml"))
    xml[0].write_text("<annotation>")  # does not parse
    (voc / f"{xml[1].stem}.png").unlink()  # its image is missing
    (voc / f"{xml[2].stem}.png").rename(voc / f"{xml[2].stem}.heic.bak")

    problems = check_data(voc).problems

    assert any(f"{xml[0].name}' cannot be read as XML" in problem for problem in problems), problems
    assert any(f"{xml[1].stem}.png' of the VOC file" in problem for problem in problems), problems
    assert any(f"{xml[2].stem}.png' of the VOC file" in problem for problem in problems), problems
    assert len(problems) == len(set(problems)) == 3  # each once, though the class names read them too


def test_box_layouts_note_a_drawn_validation_split_names_alike_and_files_not_read(shapes: Path, tmp_path: Path) -> None:
    voc = coco_to_voc(shapes / "detection", tmp_path / "flat", flat=True)
    first = sorted(voc.glob("*.xml"))[0]
    first.write_text(first.read_text().replace("<name>circle</name>", "<name>Circle</name>"))
    (voc / "IMG_0001.HEIC").write_bytes(b"not read")
    yolo = coco_to_yolo(shapes / "detection", tmp_path / "yolo")
    (yolo / "images" / "train" / "scan.gif").write_bytes(b"GIF89a")
    (yolo / "labels" / "val" / "deleted.txt").write_text("0 0.5 0.5 0.2 0.2\n")  # its image was deleted
    listed = _copy(shapes, "voc", tmp_path)

    voc_notes, yolo_notes, listed_notes = (check_data(root).notes for root in (voc, yolo, listed))

    alike = r"Classes 'Circle' and 'circle' \(\d and \d\) differ only in case:"
    assert any(re.match(alike, note) for note in voc_notes), voc_notes
    assert any("has no validation split of its own: data.validation_fraction" in note for note in voc_notes)
    assert any("IMG_0001.HEIC" in note and ".heic (1)" in note for note in voc_notes), voc_notes
    assert any("scan.gif" in note and ".gif (1)" in note for note in yolo_notes), yolo_notes
    unread = [note for note in yolo_notes if note.startswith("1 label file (")]
    assert len(unread) == 1, yolo_notes
    assert "deleted.txt') has no image of the same name and is not read" in unread[0]
    assert not any("label file" in note for note in voc_notes + listed_notes)
    assert not any("validation split" in note for note in yolo_notes + listed_notes)  # their own val splits
    assert not any("differ only in case" in note for note in yolo_notes + listed_notes)


def test_segmentation_and_classification_problems_are_all_listed(shapes: Path, tmp_path: Path) -> None:
    root = _copy(shapes, "segmentation", tmp_path)
    masks = sorted((root / "train" / "masks").glob("*.png"))
    Image.new("L", (16, 16)).save(masks[0])  # wrong size
    masks[1].unlink()  # missing
    Image.fromarray(np.full((32, 32), 9, dtype=np.uint8)).save(masks[2])  # class 9 of 4
    (root / "val" / "images" / "torn.png").write_bytes(b"GIF89a")
    Image.new("L", (32, 32)).save(root / "val" / "masks" / "torn.png")
    folder = _copy(shapes, "classification", tmp_path)
    for image in (folder / "val").rglob("*.png"):
        image.unlink()

    segmentation = check_data(root).problems
    classification = check_data(folder).problems

    assert len(segmentation) == 4, segmentation
    assert f"Mask {str(masks[0])!r} is 16x16 but its image" in segmentation[0]
    assert f"has no mask {str(masks[1])!r}" in segmentation[1]
    assert "has value 9; classes are 0 to 3" in segmentation[2]
    assert "torn.png' cannot be" in segmentation[3]
    assert any("holds no image" in problem for problem in classification), classification  # the empty split


def test_task_picks_between_layouts_and_a_folder_in_no_layout_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes").mkdir()

    status, printed = _check(tmp_path, capsys)
    assert status == 2
    assert "is in no layout torchbricks reads" in printed
    for expected in ("classification: ROOT/train/<class>/*", "detection yolo: ROOT/data.yaml", "detection voc"):
        assert expected in printed
    status, printed = _check(tmp_path, capsys, "task=detection")
    assert status == 2
    assert "holds no box detection layout" in printed
    status, printed = _check(tmp_path, capsys, "tsk=detection")
    assert status == 2
    assert "Did you mean 'task'" in printed


@pytest.mark.slow
def test_the_readme_shows_what_check_data_prints_for_the_default_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    command = "torchbricks check-data data/shapes/detection\n"
    shown = readme[readme.index(command) + len(command) : readme.index("```", readme.index(command))]
    expected = "\n".join(line.removeprefix("#").removeprefix(" ") for line in shown.splitlines())
    monkeypatch.chdir(tmp_path)
    assert main(["make-dataset", "shapes", "data/shapes"]) == 0  # as the README makes it, with the defaults
    capsys.readouterr()

    status, printed = _check(Path("data/shapes/detection"), capsys)

    assert status == 0
    assert printed.strip() == expected.strip()


def test_a_yolo_data_yaml_pointing_elsewhere_is_noted(shapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = _copy(shapes, "yolo", tmp_path)  # its data.yaml has `path:` set to its own folder
    copied = Path(shutil.copytree(original, tmp_path / "copied"))

    status, printed = _check(copied, capsys)

    assert status == 0
    assert f"Note: data.yaml points outside {str(copied)!r}; images are read from ['{original}/images/train'" in printed


def test_check_data_help_answers_without_importing_torch() -> None:
    code = (
        "import sys\nfrom torchbricks.__main__ import main\n"
        "try:\n    main(['check-data', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY:', sorted(name for name in ('torch', 'numpy', 'PIL') if name in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)

    assert completed.returncode == 0, completed.stderr
    assert "task=classification|segmentation|detection|multitask" in completed.stdout
    assert "HEAVY: []" in completed.stdout


def test_an_empty_split_is_listed_with_the_other_problems(shapes: Path, tmp_path: Path) -> None:
    root = _copy(shapes, "yolo", tmp_path)
    shutil.rmtree(root / "images" / "val")
    sorted((root / "labels" / "train").glob("*.txt"))[0].write_text("3 0.5 0.5 0.2 0.2\n")

    problems = check_data(root).problems

    assert len(problems) == 3, problems
    assert "line 1: class 3 is out of range" in problems[0]
    assert f"The YOLO split source {str(root / 'images' / 'val')!r} does not exist." == problems[1]
    assert "The YOLO split 'validation' holds no image" in problems[2]


def test_label_lines_written_twice_are_a_note_with_their_count_and_first_images(
    shapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = coco_to_yolo(shapes / "detection", tmp_path / "yolo")
    labels = sorted((root / "labels" / "train").glob("*.txt"))
    for label in labels[:2]:
        first = label.read_text().splitlines()[0]
        label.write_text(label.read_text() + first + "\n" + first + "\n")
    images = [str(root / "images" / "train" / f"{label.stem}.png") for label in labels[:2]]

    status, printed = _check(root, capsys)

    assert status == 0, printed
    assert f"Note: 4 objects in 2 images of the 'train' split ({images[0]!r}, {images[1]!r}) repeat another of the " in printed
    assert "same image exactly (same class and box: an annotation written twice) and are read once." in printed


def test_difficult_objects_and_crowd_regions_are_not_counted_as_instances_and_a_class_with_only_them_has_no_example(
    shapes: Path, tmp_path: Path
) -> None:
    coco = _copy(shapes, "detection", tmp_path)
    document = json.loads((coco / "train.json").read_text())
    class_of = {category["id"]: category["name"] for category in document["categories"]}
    circles = [item for item in document["annotations"] if class_of[item["category_id"]] == "circle"]
    crowds = [item for item in document["annotations"] if class_of[item["category_id"]] == "triangle"] + circles[:1]
    for item in crowds:
        item["iscrowd"] = 1
    (coco / "train.json").write_text(json.dumps(document))
    voc = _copy(shapes, "voc", tmp_path)
    difficult = 0
    for path in sorted((voc / "Annotations").glob("train_*.xml")):
        text, marked = re.subn(
            r"(<name>triangle</name>(?:(?!</object>).)*)<difficult>0</difficult>", r"\1<difficult>1</difficult>", path.read_text()
        )
        difficult += marked
        path.write_text(text)

    coco_report, voc_report = check_data(coco), check_data(voc)

    triangles = len(crowds) - 1
    assert coco_report.counts["train"]["circle"][1] == len(circles) - 1
    assert "triangle" not in coco_report.counts["train"]
    assert coco_report.problems == [
        f"Class 'triangle' has no example in the train split: it has only {triangles} crowd regions there, which "
        "training ignores."
    ]
    assert any(
        note.startswith(f"{len(crowds)} crowd regions (iscrowd: 1) of the 'train' split (circle: 1, triangle: {triangles})")
        for note in coco_report.notes
    ), coco_report.notes
    assert difficult > 1
    assert "triangle" not in voc_report.counts["train"]
    assert voc_report.problems == [
        f"Class 'triangle' has no example in the train split: it has only {difficult} difficult objects there, which "
        "training ignores."
    ]
    assert any(
        f"{difficult} difficult objects (<difficult>1</difficult>) of the 'train' split" in note for note in voc_report.notes
    )


@pytest.mark.parametrize("layout", ["yolo", "classification"])
def test_a_drawn_validation_split_is_drawn_with_the_fraction_and_seed_training_is_given(
    shapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str
) -> None:
    from layouts import yolo_without_splits

    from torchbricks.lightning.datamodules import DetectionDataModule, ImageFolderDataModule

    if layout == "yolo":
        root = yolo_without_splits(coco_to_yolo(shapes / "detection", tmp_path / "yolo"), tmp_path / "pool", "label_studio")
        data: Any = DetectionDataModule(root, image_size=32, num_workers=0, validation_fraction=0.5, split_seed=3)
    else:
        root = Path(shutil.copytree(shapes / "classification" / "train", tmp_path / "pool"))  # class folders, no splits
        data = ImageFolderDataModule(root, image_size=32, num_workers=0, validation_fraction=0.5, split_seed=3)
    data.setup("fit")
    trained, validated = (len(loader.dataset) for loader in (data.train_dataloader(), data.val_dataloader()))

    status, printed = _check(root, capsys, "data.validation_fraction=0.5", "split_seed=3")

    assert status == 0, printed
    report = check_data(root, validation_fraction=0.5, seed=3)
    assert (report.images["train"], report.images["validation"]) == (trained, validated)
    assert "data.validation_fraction=0.5, data.split_seed=3" in printed


def test_ignored_mask_pixels_are_noted_and_masks_of_nothing_but_0_and_255_among_class_indices_are_named(
    tmp_path: Path,
) -> None:
    root = tmp_path / "roads"
    (root / "classes.txt").parent.mkdir()
    (root / "classes.txt").write_text("background\nroad\n")
    drawn_255 = []
    for split in ("train", "val"):
        for folder in ("images", "masks"):
            (root / split / folder).mkdir(parents=True)
        for index in range(4):
            mask = np.zeros((8, 8), dtype=np.uint8)
            mask[2:6, 2:6] = 1
            if split == "train" and index == 3:  # from another tool: the road drawn as 255
                mask[2:6, 2:6] = 255
                drawn_255.append(root / split / "masks" / f"{index}.png")
            Image.fromarray(np.full((8, 8, 3), index * 40 + len(split), dtype=np.uint8)).save(
                root / split / "images" / f"{index}.png"
            )
            Image.fromarray(mask).save(root / split / "masks" / f"{index}.png")

    report = check_data(root)

    assert report.counts["train"]["road"] == [3, 48]  # 3 masks of 16 road pixels: the fourth's are ignored
    (notice,) = [note for note in report.notes if "mask pixels of the 'train' split" in note]
    assert notice.startswith("16 mask pixels of the 'train' split (6.2%) are 255: ignored")
    assert f"1 mask ({str(drawn_255[0])!r}) holds no class but the background and 255" in notice
    assert not any("'validation' split" in note for note in report.notes)


def test_voc_xml_files_in_no_split_list_are_noted_as_not_read(shapes: Path, tmp_path: Path) -> None:
    voc = _copy(shapes, "voc", tmp_path)
    listed = voc / "ImageSets" / "Main" / "train.txt"
    ids = listed.read_text().split()
    listed.write_text("\n".join(ids[:-2]) + "\n")  # two images labelled after the lists were written

    report = check_data(voc)

    (note,) = [note for note in report.notes if "in no split list" in note]
    assert note.startswith(f"2 XML files of {str(voc / 'Annotations')!r} ('{ids[-2]}.xml', ...) are in no split list")
    assert report.images["train"] == len(ids) - 2  # as training reads it
    assert not any("in no split list" in note for note in check_data(_copy(shapes, "voc", tmp_path / "whole")).notes)


def test_two_coco_categories_of_one_name_are_noted_as_one_name_not_as_differing_in_case(shapes: Path, tmp_path: Path) -> None:
    # The note said "Classes 'circle' and 'circle' differ only in case", which they do not.
    root = _copy(shapes, "detection", tmp_path)
    for split in ("train", "val"):
        document = json.loads((root / f"{split}.json").read_text())
        document["categories"][-1]["name"] = document["categories"][0]["name"]
        (root / f"{split}.json").write_text(json.dumps(document))
    first, last = 0, len(document["categories"]) - 1
    name = document["categories"][0]["name"]

    notes = [note for note in check_data(root).notes if name in note]

    assert len(notes) == 1, notes
    assert notes[0].startswith(f"Classes {first} and {last} are both named {name!r}: each is a class of its own")
    assert "case" not in notes[0]


def test_a_classes_txt_without_its_background_line_is_a_note(tmp_path: Path) -> None:
    for split in ("train", "val"):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "masks").mkdir(parents=True)
        mask = np.zeros((8, 8), dtype=np.uint8)
        mask[1:3, 1:3], mask[5:7, 5:7] = 1, 2  # a cat and a dog; no bird drawn yet
        Image.new("RGB", (8, 8)).save(tmp_path / split / "images" / "a.png")
        Image.fromarray(mask).save(tmp_path / split / "masks" / "a.png")
    (tmp_path / "classes.txt").write_text("cat\ndog\nbird\n")

    report = check_data(tmp_path, task="segmentation")

    (note,) = [note for note in report.notes if "begins with" in note]
    assert "classes.txt' begins with 'cat': its first line names mask value 0" in note
    (tmp_path / "classes.txt").write_text("background\ncat\ndog\nbird\n")
    assert not any("begins with" in note for note in check_data(tmp_path, task="segmentation").notes)


@pytest.mark.parametrize("split", ["train", "validation"])
def test_a_split_whose_every_mask_pixel_is_255_is_a_problem_naming_the_split(
    shapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], split: str
) -> None:
    root = _copy(shapes, "segmentation", tmp_path)
    folder = {"train": "train", "validation": "val"}[split]
    masks = sorted((root / folder / "masks").glob("*.png"))
    for path in masks:
        Image.fromarray(np.full_like(np.asarray(Image.open(path)), 255)).save(path)

    status, output = _check(root, capsys)

    assert status == 1, output
    pixels = len(masks) * 32 * 32
    expected = f"Every mask pixel of the {split!r} split ({pixels} pixels of {len(masks)} masks) is 255 (ignored): "
    assert expected in output, output
    assert f"mask pixels of the {split!r} split (100.0%) are 255" not in output  # the problem, not the note as well


@pytest.mark.parametrize("layout", ["coco", "yolo"])
def test_segmentation_on_outlines_counts_the_pixels_of_the_masks_drawn_from_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str
) -> None:
    root = write_outline_data(tmp_path / layout, layout)
    expected = sum(np.bincount(expected_outline_mask(index, layout == "coco").ravel(), minlength=256) for index in range(4))

    report = check_data(root, task="segmentation")
    status, said = _check(root, capsys, "task=segmentation")

    assert (report.task, report.layout, report.class_names) == ("segmentation", layout, ["background", *OUTLINE_CLASSES])
    assert report.ok
    for split in ("train", "validation"):
        assert report.counts[split] == {
            name: [4, int(expected[value])] for value, name in enumerate(report.class_names)
        }  # each class in each image; 255 not counted
    assert any(
        "4 objects of the 'train' split (in 4 images; 8 with an outline) have a box but no outline" in n for n in report.notes
    )
    assert any("4 crowd regions (iscrowd: 1) of the 'train' split" in note for note in report.notes) == (layout == "coco")
    assert status == 0
    assert f"Data {str(root)!r}: segmentation, {layout} layout, 3 classes ['background', 'cat', 'dog']" in said


def test_segmentation_on_box_data_without_outlines_is_a_problem_saying_to_train_detection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_outline_data(tmp_path / "yolo", "yolo", outlines=False)

    status, said = _check(root, capsys, "task=segmentation")

    assert status == 1
    assert "The 'train' split of" in said
    assert "12 objects in 4 images and not one outline" in said
    assert f"Train task=detection on it (torchbricks train task=detection data.root={root})" in said


@pytest.mark.parametrize("outlines", [True, False])
def test_multitask_on_yolo_data_says_how_its_masks_are_drawn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], outlines: bool
) -> None:
    root = write_outline_data(tmp_path / "yolo", "yolo", outlines=outlines)

    report = check_data(root, task="multitask")
    status, said = _check(root, capsys, "task=multitask")

    assert (report.task, report.layout, report.class_names) == ("multitask", "yolo", OUTLINE_CLASSES)
    assert report.ok, report.problems
    assert status == 0
    assert "task=multitask draws each image's mask from its objects' outlines" in said
    if outlines:
        assert "4 objects of the 'train' split (in 4 images; 8 with an outline) have a box but no outline" in said
    else:
        assert "The 'train' split has 12 objects (in 4 images) and not one outline" in said
        assert "task=multitask draws each box as its class in the masks" in said


def test_multitask_on_voc_data_is_a_problem_naming_the_layouts_with_outlines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = coco_to_voc(write_outline_data(tmp_path / "coco", "coco"), tmp_path / "voc")

    report = check_data(root, task="multitask")

    assert "task=multitask draws its masks from COCO or YOLO outlines; the voc data has boxes only." in report.problems
