"""Pascal VOC boxes as VOC's devkit and CVAT's "PASCAL VOC 1.1" export write them: JPEGImages/, Annotations/*.xml and
the lists of ImageSets/Main (CVAT names them after the subsets: default.txt, or a project's Train.txt, Test.txt...)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from layouts import voc_xml
from PIL import Image

from torchbricks.__main__ import main
from torchbricks.datasets.checking import check_data
from torchbricks.datasets.detection_layouts import detect_detection_layout, has_test_split, has_validation_split
from torchbricks.datasets.readers import DataError
from torchbricks.datasets.voc import VocDataset, parse_voc_xml, read_voc_splits, voc_class_names


def _cvat_voc_export(root: Path, subsets: dict[str, list[str]]) -> Path:
    """CVAT's "PASCAL VOC 1.1" export with its images: an XML file for every image (none of the unannotated's
    objects), each image under its own extension, a list per subset, labelmap.txt without colours."""
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:::\ncar:::\nroad:::\n")
    index = 0
    for subset, stems in subsets.items():
        (root / "ImageSets" / "Main" / f"{subset}.txt").write_text("".join(f"{stem}\n" for stem in stems))
        for stem in stems:
            name = f"{stem}{'.png' if index % 2 else '.jpg'}"
            Image.new("RGB", (40, 30), (10 * index, 80, 40)).save(root / "JPEGImages" / name)
            objects = [("car", [2.0, 3.0, 10.0 + index, 8.0], False), ("road", [0.0, 20.0, 40.0, 10.0], False)]
            (root / "Annotations" / f"{stem}.xml").write_text(_datumaro_xml(name, objects if index % 5 else []))
            index += 1
    return root


def _datumaro_xml(filename: str, objects: list[tuple[str, list[float], bool]]) -> str:
    """An XML file as CVAT's export (Datumaro's writer) writes it for a 40x30 image: boxes `[x, y, w, h]` as the pixel
    edges `str(x)`, `str(x + w)`, source annotation and image 'Unknown'."""
    parts = [
        f"<annotation><folder></folder><filename>{filename}</filename><source><database>Unknown</database>"
        "<annotation>Unknown</annotation><image>Unknown</image></source><size><width>40</width><height>30</height>"
        "<depth></depth></size><segmented>0</segmented>"
    ]
    for name, (x, y, w, h), difficult in objects:
        parts.append(
            f"<object><name>{name}</name><truncated>0</truncated><occluded>0</occluded><difficult>{int(difficult)}"
            f"</difficult><bndbox><xmin>{x}</xmin><ymin>{y}</ymin><xmax>{x + w}</xmax><ymax>{y + h}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


def test_cvat_default_list_is_split_at_random_and_its_test_subset_kept_out_of_training(tmp_path: Path) -> None:
    stems = {"default": [f"frame_{index:06d}" for index in range(10)], "Test": ["t_1", "t_2", "t_3"]}
    root = _cvat_voc_export(tmp_path / "cvat", stems)

    splits = read_voc_splits(root)

    assert detect_detection_layout(root) == "voc"
    assert (len(splits.files["train"]), len(splits.files["validation"])) == (8, 2)  # 20 % of default.txt
    assert sorted(path.stem for path in splits.files["train"] + splits.files["validation"]) == stems["default"]
    assert [path.stem for path in splits.files["test"]] == stems["Test"]
    assert has_test_split(root, "voc")
    assert not has_validation_split(root, "voc")
    assert voc_class_names(root) == ["car", "road"]
    dataset = VocDataset(root, "test")
    assert [record.path.name for record in dataset.records] == ["t_1.jpg", "t_2.png", "t_3.jpg"]


def test_voc_trainval_with_val_trains_on_what_val_lacks(tmp_path: Path) -> None:
    stems = [f"2008_{index:06d}" for index in range(6)]
    root = _cvat_voc_export(tmp_path / "voc", {"trainval": stems})
    (root / "ImageSets" / "Main" / "val.txt").write_text("2008_000001\n2008_000004\n")
    (root / "ImageSets" / "Main" / "car_trainval.txt").write_text("".join(f"{stem}  1\n" for stem in stems))  # per class

    splits = read_voc_splits(root)

    assert splits.listed
    assert [path.stem for path in splits.files["train"]] == ["2008_000000", "2008_000002", "2008_000003", "2008_000005"]
    assert [path.stem for path in splits.files["validation"]] == ["2008_000001", "2008_000004"]


def test_check_data_counts_a_cvat_voc_export(tmp_path: Path) -> None:
    root = _cvat_voc_export(tmp_path / "cvat", {"Train": [f"a{index}" for index in range(4)], "Validation": ["b0", "b1"]})

    report = check_data(root)

    assert (report.task, report.layout, report.class_names, report.problems) == ("detection", "voc", ["car", "road"], [])
    assert report.images == {"train": 4, "validation": 2}
    assert report.counts["train"]["car"] == [3, 3]  # a0 is unannotated: an image without objects


def test_train_reads_a_cvat_voc_export_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _cvat_voc_export(tmp_path / "cvat", {"default": [f"frame_{index:06d}" for index in range(8)]})
    arguments = ["train", "task=detection", f"data.root={root}", f"experiment.path_experiments={tmp_path}"]
    tiny = ["experiment.name=run", "trainer.max_epochs=1", "data.image_size=32", "data.batch_size=4", "n_visualized=4"]

    status = main([*arguments, *tiny, "export_onnx=false"])

    printed = capsys.readouterr()
    assert status == 0, printed.err[-2000:]
    assert (tmp_path / "run" / "metrics_test.json").is_file()
    assert printed.out.count("are read as pixel edges from 0, as CVAT, Label Studio and labelImg write them") == 1


def test_a_list_line_is_an_id_whole_and_a_per_class_line_in_a_split_list_is_named(tmp_path: Path) -> None:
    root = _cvat_voc_export(tmp_path / "cvat", {"Train": ["IMG 0001", "IMG 0002", "img_3"], "Validation": ["IMG 0004"]})

    splits = read_voc_splits(root)

    assert [path.name for path in splits.files["train"]] == ["IMG 0001.xml", "IMG 0002.xml", "img_3.xml"]
    assert check_data(root).problems == []
    # A split list written in the per-class form '<id> <flag>' (the devkit's train.txt holds one id a line)
    (root / "ImageSets" / "Main" / "Train.txt").write_text("img_3  1\nIMG 0002\n")
    problems = check_data(root).problems
    assert any("'img_3  1' reads as VOC's per-class form" in problem for problem in problems), problems


def test_an_object_written_twice_is_read_once_and_a_difficult_one_on_the_same_box_is_kept(tmp_path: Path) -> None:
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (tmp_path / folder).mkdir(parents=True)
    for stem, split in (("a", "train"), ("b", "val")):
        Image.new("RGB", (40, 30)).save(tmp_path / "JPEGImages" / f"{stem}.jpg")
        (tmp_path / "ImageSets" / "Main" / f"{split}.txt").write_text(f"{stem}\n")
        car = ("car", [2.0, 3.0, 10.0, 8.0], False)
        objects = [car, car, ("car", [2.0, 3.0, 10.0, 8.0], True), car]
        (tmp_path / "Annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.jpg", 40, 30, objects))

    dataset = VocDataset(tmp_path, "train")

    assert [item.difficult for item in dataset.records[0].objects] == [False, True]
    assert dataset.duplicates == {tmp_path / "JPEGImages" / "a.jpg": 2}


def test_a_voc_coordinate_that_is_no_finite_number_is_an_error_naming_it(tmp_path: Path) -> None:
    """`float("nan")` parses: without a check of its own the box would be read, and trained on, as NaN."""
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (tmp_path / folder).mkdir(parents=True)
    for stem, split, x in (("a", "train", 2.0), ("b", "val", float("nan"))):
        Image.new("RGB", (40, 30)).save(tmp_path / "JPEGImages" / f"{stem}.jpg")
        (tmp_path / "ImageSets" / "Main" / f"{split}.txt").write_text(f"{stem}\n")
        objects = [("car", [x, 3.0, 8.0, 5.0], False)]
        (tmp_path / "Annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.jpg", 40, 30, objects))

    with pytest.raises(DataError, match=r"b\.xml': object 1 \(car\) has a field that is not a number: .*\('nan', '4\.0'"):
        VocDataset(tmp_path, "validation")


def _xml_with_difficult_flags(path: Path, flags: list[str]) -> Path:
    """`path`: a VOC file of a 40x30 image `a.jpg` beside it, one car per flag with `<difficult>FLAG</difficult>`."""
    Image.new("RGB", (40, 30)).save(path.parent / "a.jpg")
    objects = "".join(
        f"<object><name>car</name><difficult>{flag}</difficult><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>9</xmax>"
        "<ymax>8</ymax></bndbox></object>"
        for flag in flags
    )
    path.write_text(
        f"<annotation><filename>a.jpg</filename><size><width>40</width><height>30</height></size>{objects}</annotation>"
    )
    return path


def test_a_difficult_flag_written_as_a_boolean_is_read_as_0_or_1(tmp_path: Path) -> None:
    # Writers that print a Python boolean (`str(box.difficult)`) write True and False: the file was refused.
    path = _xml_with_difficult_flags(tmp_path / "a.xml", ["1", " True ", "false", "TRUE", "0", "", "1.0"])

    annotation = parse_voc_xml(path, tmp_path)

    assert [difficult for _, _, difficult in annotation.objects] == [True, True, False, True, False, False, True]


@pytest.mark.parametrize("flag", ["2", "0.5", "yes", "-1"])
def test_a_difficult_flag_that_is_neither_0_1_nor_a_boolean_is_an_error_naming_file_object_and_value(
    tmp_path: Path, flag: str
) -> None:
    # 2 was read as difficult and 0.5 as not, without a word.
    path = _xml_with_difficult_flags(tmp_path / "a.xml", ["0", flag])

    with pytest.raises(DataError, match=rf"a\.xml': object 2 \(car\) has difficult = '{re.escape(flag)}'; expected 0 or 1"):
        parse_voc_xml(path, tmp_path)


# One object covering the pixel columns 10 to 19 and rows 5 to 14 of a 40x30 image: pixel edges (10, 5, 20, 15),
# written as each tool writes it.
EDGES = (10.0, 5.0, 20.0, 15.0)
WRITTEN_BY = {
    # VOC's devkit: 1-based pixel indices, the last pixel inside
    "voc_devkit": (
        "<annotation><folder>VOC2012</folder><filename>{stem}.jpg</filename><source><database>The VOC2012 Database"
        "</database><annotation>PASCAL VOC2012</annotation><image>flickr</image></source>"
        "<size><width>40</width><height>30</height><depth>3</depth></size><segmented>0</segmented>"
        "<object><name>cat</name><pose>Left</pose><truncated>0</truncated><occluded>0</occluded><difficult>0</difficult>"
        "<bndbox><xmin>11</xmin><ymin>6</ymin><xmax>20</xmax><ymax>15</ymax></bndbox></object></annotation>"
    ),
    # CVAT's "PASCAL VOC 1.1" (Datumaro's writer): pixel edges from 0 as floats, str(x) and str(x + w)
    "cvat": (
        "<annotation>\n  <folder></folder>\n  <filename>{stem}.jpg</filename>\n  <source>\n    <database>Unknown"
        "</database>\n    <annotation>Unknown</annotation>\n    <image>Unknown</image>\n  </source>\n  <size>\n"
        "    <width>40</width>\n    <height>30</height>\n    <depth></depth>\n  </size>\n  <segmented>0</segmented>\n"
        "  <object>\n    <name>cat</name>\n    <truncated>0</truncated>\n    <occluded>0</occluded>\n"
        "    <difficult>0</difficult>\n    <bndbox>\n      <xmin>10.0</xmin>\n      <ymin>5.0</ymin>\n"
        "      <xmax>20.0</xmax>\n      <ymax>15.0</ymax>\n    </bndbox>\n  </object>\n</annotation>\n"
    ),
    # Label Studio's export: int(x), int(x) + int(w) from 0; the filename without its extension
    "label_studio": (
        '<?xml version="1.0" encoding="utf-8"?><annotation><folder>images</folder><filename>{stem}</filename>'
        "<source><database>MyDatabase</database><annotation>COCO2017</annotation><image>flickr</image>"
        "<flickrid>NULL</flickrid><annotator>1</annotator></source><owner><flickrid>NULL</flickrid>"
        "<name>Label Studio</name></owner><size><width>40</width><height>30</height><depth>3</depth></size>"
        "<segmented>0</segmented><object><name>cat</name><pose>Unspecified</pose><truncated>0</truncated>"
        "<difficult>0</difficult><bndbox><xmin>10</xmin><ymin>5</ymin><xmax>20</xmax><ymax>15</ymax></bndbox>"
        "</object></annotation>"
    ),
    # Roboflow's supervision (detections_to_pascal_voc, pretty-printed by minidom): int(edge + 1) for every corner
    "supervision": (
        '<?xml version="1.0" ?>\n<annotation>\n  <folder>VOC</folder>\n  <filename>{stem}.jpg</filename>\n  <source>\n'
        "    <database>roboflow.ai</database>\n  </source>\n  <size>\n    <width>40</width>\n    <height>30</height>\n"
        "    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n  <object>\n    <name>cat</name>\n    <bndbox>\n"
        "      <xmin>11</xmin>\n      <ymin>6</ymin>\n      <xmax>21</xmax>\n      <ymax>16</ymax>\n    </bndbox>\n"
        "  </object>\n</annotation>\n"
    ),
    # labelImg: int() of the corners it was drawn with, from 0 (an edge below 1 raised to 1), a path element
    "labelimg": (
        "<annotation>\n\t<folder>shots</folder>\n\t<filename>{stem}.jpg</filename>\n\t<path>/home/me/shots/{stem}.jpg"
        "</path>\n\t<source>\n\t\t<database>Unknown</database>\n\t</source>\n\t<size>\n\t\t<width>40</width>\n"
        "\t\t<height>30</height>\n\t\t<depth>3</depth>\n\t</size>\n\t<segmented>0</segmented>\n\t<object>\n"
        "\t\t<name>cat</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n"
        "\t\t<bndbox>\n\t\t\t<xmin>10</xmin>\n\t\t\t<ymin>5</ymin>\n\t\t\t<xmax>20</xmax>\n\t\t\t<ymax>15</ymax>\n"
        "\t\t</bndbox>\n\t</object>\n</annotation>\n"
    ),
}


@pytest.mark.parametrize("tool", list(WRITTEN_BY))
def test_a_box_is_read_as_the_same_pixels_whichever_tool_wrote_it(
    tmp_path: Path, tool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every XML was read as VOC's 1-based indices: the boxes of CVAT, Label Studio and labelImg, pixel edges from 0,
    # were one pixel wider and taller than drawn, (9, 4, 20, 15), without a word; supervision's, each corner an edge
    # plus 1, ended one pixel right of and below their objects, (10, 5, 21, 16).
    for stem in ("a", "b", "c"):
        Image.new("RGB", (40, 30)).save(tmp_path / f"{stem}.jpg")
        (tmp_path / f"{stem}.xml").write_text(WRITTEN_BY[tool].format(stem=stem))

    datasets = [VocDataset(tmp_path, split, validation_fraction=0.3) for split in ("train", "validation")]
    boxes = [item.box for dataset in datasets for record in dataset.records for item in record.objects]

    assert boxes == [EDGES] * 3
    notices = {dataset.reading_notice for dataset in datasets}  # one for the data set, whichever split says it
    report = check_data(tmp_path, task="detection")
    if tool == "voc_devkit":
        assert notices == {None}
        assert not any("pixel edges" in note for note in report.notes)
    else:
        (notice,) = notices
        assert ("read as Roboflow's supervision writes them" if tool == "supervision" else "read as pixel edges from 0") in str(
            notice
        )
        assert notice in report.notes


def test_roboflows_web_export_and_supervisions_files_of_before_0_14_are_not_read_as_supervision_now_writes(
    tmp_path: Path,
) -> None:
    # Roboflow's web export also names the database roboflow.ai, with a path and each object's pose and difficult; the
    # supervision before 0.14 (July 2023) wrote int(edge), no + 1, told by a box starting at 0
    supervision = WRITTEN_BY["supervision"]
    web = supervision.replace("<segmented>", "<path>{stem}.jpg</path><segmented>").replace(
        "<name>cat</name>", "<name>cat</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
    )
    old = supervision.replace("<xmin>11</xmin>", "<xmin>10</xmin>").replace("<ymin>6</ymin>", "<ymin>5</ymin>")
    old = old.replace("<xmax>21</xmax>", "<xmax>20</xmax>").replace("<ymax>16</ymax>", "<ymax>15</ymax>")
    for name, text, box in (("web", web, (10.0, 5.0, 21.0, 16.0)), ("old", old, EDGES)):
        (tmp_path / name).mkdir()
        for stem in ("a", "b", "c"):
            Image.new("RGB", (40, 30)).save(tmp_path / name / f"{stem}.jpg")
            (tmp_path / name / f"{stem}.xml").write_text(text.format(stem=stem))
        # c starts its box at 0 in the old files (10 -> 00); 11 -> 01 in the web export's, still 1
        (tmp_path / name / "c.xml").write_text(text.format(stem="c").replace("<xmin>1", "<xmin>0", 1))

        datasets = [VocDataset(tmp_path / name, split, validation_fraction=0.3) for split in ("train", "validation")]

        boxes = {record.path.stem: record.objects[0].box for dataset in datasets for record in dataset.records}
        assert boxes["a"] == boxes["b"] == box, name
        assert all("supervision" not in str(dataset.reading_notice) for dataset in datasets)


@pytest.mark.parametrize(
    ("corners", "why"), [((0, 5, 10, 15), "starting at 0"), ((10.5, 5, 20, 15), "with a fraction")], ids=["zero", "fraction"]
)
def test_a_box_only_pixel_edges_can_be_read_from_0_makes_the_whole_data_set_read_so(
    tmp_path: Path, corners: tuple[float, ...], why: str
) -> None:
    # a file of no known writer: one box that 1-based indices cannot be (a 0, a fraction) says how all are written
    plain = WRITTEN_BY["voc_devkit"].replace(
        "<source><database>The VOC2012 Database</database><annotation>PASCAL VOC2012</annotation><image>flickr</image></source>",
        "",
    )
    for stem in ("a", "b", "c"):
        Image.new("RGB", (40, 30)).save(tmp_path / f"{stem}.jpg")
        (tmp_path / f"{stem}.xml").write_text(
            plain.format(stem=stem).replace("<xmin>11</xmin><ymin>6</ymin>", "<xmin>10</xmin><ymin>5</ymin>")
        )
    xml = (tmp_path / "c.xml").read_text()
    (tmp_path / "c.xml").write_text(
        xml.replace("<xmin>10</xmin><ymin>5</ymin>", f"<xmin>{corners[0]}</xmin><ymin>{corners[1]}</ymin>")
    )

    datasets = [VocDataset(tmp_path, split, validation_fraction=0.3) for split in ("train", "validation")]
    boxes = {record.path.stem: record.objects[0].box for dataset in datasets for record in dataset.records}

    assert boxes["a"] == boxes["b"] == EDGES
    assert boxes["c"] == (float(corners[0]), float(corners[1]), 20.0, 15.0)
    (notice,) = {dataset.reading_notice for dataset in datasets}
    assert "c.xml' has a box" in str(notice)
    assert why in str(notice)


def test_two_xml_files_naming_one_image_are_an_error_naming_both(tmp_path: Path) -> None:
    # labelImg keeps the filename an image had when it was labelled: after the images were renamed, b.xml still
    # named a.jpg and its boxes were read on a's picture (and b.jpg's own boxes lost), without a word.
    for stem in ("a", "b", "c"):
        Image.new("RGB", (40, 30)).save(tmp_path / f"{stem}.jpg")
        (tmp_path / f"{stem}.xml").write_text(WRITTEN_BY["labelimg"].format(stem=stem))
    (tmp_path / "b.xml").write_text((tmp_path / "b.xml").read_text().replace("<filename>b.jpg", "<filename>a.jpg"))
    (tmp_path / "b.jpg").unlink()  # with b.jpg there, b.xml is refused alone (below)

    with pytest.raises(DataError, match=r"The VOC files .* both describe the image '.*a\.jpg'") as error:
        [VocDataset(tmp_path, split, validation_fraction=0.5) for split in ("train", "validation")]
    assert "a.xml'" in str(error.value)
    assert "b.xml'" in str(error.value)


def test_an_xml_file_naming_another_image_than_the_one_of_its_name_is_an_error_naming_both(tmp_path: Path) -> None:
    # Images renumbered with their XML files (a.* -> b.*, b.* -> c.*, c.* -> a.*) keep each <filename> of before:
    # every XML file named another image of the set, no two the same, and each image was read with another's boxes
    # without a word (torchvision, Detectron2 and MMDetection pair them by name). A filename that tells a.png from a.jpg
    # beside it still names its image.
    for stem, before in (("a", "c"), ("b", "a"), ("c", "b")):
        Image.new("RGB", (40, 30)).save(tmp_path / f"{stem}.jpg")
        (tmp_path / f"{stem}.xml").write_text(WRITTEN_BY["labelimg"].format(stem=before))

    with pytest.raises(DataError, match=r"names its image '.\.jpg' \(<filename>\), but '.*.\.jpg' has the XML file's name"):
        [VocDataset(tmp_path, split, validation_fraction=0.5) for split in ("train", "validation")]

    for stem in ("a", "b", "c"):
        (tmp_path / f"{stem}.xml").write_text(WRITTEN_BY["labelimg"].format(stem=stem))
    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    (tmp_path / "a.xml").write_text((tmp_path / "a.xml").read_text().replace("<filename>a.jpg", "<filename>a.png"))
    records = [
        record for split in ("train", "validation") for record in VocDataset(tmp_path, split, validation_fraction=0.5).records
    ]
    assert sorted(record.path.name for record in records) == ["a.png", "b.jpg", "c.jpg"]


@pytest.mark.parametrize(
    ("origin", "box"), [("auto", (9.0, 4.0, 20.0, 15.0)), (1, (9.0, 4.0, 20.0, 15.0)), ("0", EDGES), (0, EDGES)]
)
def test_data_voc_origin_says_what_the_boxes_count_from_when_the_files_do_not(
    tmp_path: Path, origin: int | str, box: tuple[float, ...]
) -> None:
    # a tool no file shows: its pixel edges from 0 read as VOC's 1-based indices unless data.voc_origin=0 says so
    unknown = WRITTEN_BY["labelimg"].replace("<database>Unknown</database>", "<database>my-tool</database>")
    for index, stem in enumerate(("a", "b")):
        Image.new("RGB", (40, 30), (80 * index, 0, 0)).save(tmp_path / f"{stem}.jpg")
        (tmp_path / f"{stem}.xml").write_text(unknown.format(stem=stem))

    datasets = [VocDataset(tmp_path, split, validation_fraction=0.5, origin=origin) for split in ("train", "validation")]
    report = check_data(tmp_path, task="detection", voc_origin=origin)

    assert [record.objects[0].box for dataset in datasets for record in dataset.records] == [box, box]
    assert report.problems == []


def test_an_unknown_voc_origin_is_refused_naming_the_key(tmp_path: Path) -> None:
    from torchbricks.errors import ConfigError
    from torchbricks.lightning.datamodules import DetectionDataModule

    _cvat_voc_export(tmp_path / "cvat", {"Train": ["a0", "a1"], "Validation": ["b0"]})

    with pytest.raises(ConfigError, match=r"'data.voc_origin' is 'zero'; expected auto .*, 1 .* or 0"):
        DetectionDataModule(tmp_path / "cvat", voc_origin="zero", image_size=32, batch_size=2, num_workers=0)
    with pytest.raises(ConfigError, match=r"'data.voc_origin' is 2"):
        check_data(tmp_path / "cvat", voc_origin=2)


@pytest.mark.parametrize("tool", ["cvat", "label_studio", "labelimg", "supervision"])
def test_voc_files_merged_with_a_tools_files_keep_their_1_based_indices(
    tmp_path: Path, tool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # VOC2012's own files beside one's own labelled with a tool: the whole data set was read as the tool writes boxes,
    # so VOC's lost their left column and top row of pixels, (10, 5, 20, 15) read as (11, 6, 20, 15), or, beside
    # supervision's files, their right column and bottom row, (10, 5, 19, 14); the notice named only the tool's file.
    files = (("voc_a", "voc_devkit"), ("voc_b", "voc_devkit"), ("own_c", tool), ("own_d", tool))
    for index, (stem, writer) in enumerate(files):
        Image.new("RGB", (40, 30), (60 * index, 0, 0)).save(tmp_path / f"{stem}.jpg")  # no two alike for check-data
        (tmp_path / f"{stem}.xml").write_text(WRITTEN_BY[writer].format(stem=stem))

    datasets = [VocDataset(tmp_path, split, validation_fraction=0.5) for split in ("train", "validation")]
    boxes = {record.path.stem: item.box for dataset in datasets for record in dataset.records for item in record.objects}

    assert boxes == dict.fromkeys(("voc_a", "voc_b", "own_c", "own_d"), EDGES)
    (notice,) = {dataset.reading_notice for dataset in datasets}
    assert "The 2 XML files of the VOC data sets themselves (source 'The VOC... Database') are read as VOC's 1-based" in str(
        notice
    )
    assert main(["check-data", str(tmp_path), "validation_fraction=0.5"]) == 0
    assert "The 2 XML files of the VOC data sets themselves" in capsys.readouterr().out


def test_a_voc_origin_given_reads_the_voc_data_sets_files_so_too(tmp_path: Path) -> None:
    for stem, writer in (("voc_a", "voc_devkit"), ("own_b", "cvat"), ("own_c", "cvat")):
        Image.new("RGB", (40, 30)).save(tmp_path / f"{stem}.jpg")
        (tmp_path / f"{stem}.xml").write_text(WRITTEN_BY[writer].format(stem=stem))

    datasets = [VocDataset(tmp_path, split, validation_fraction=0.3, origin=0) for split in ("train", "validation")]
    boxes = {record.path.stem: item.box for dataset in datasets for record in dataset.records for item in record.objects}

    assert boxes["voc_a"] == (11.0, 6.0, 20.0, 15.0)  # as it says: its numbers as pixel edges


def test_cvat_files_of_images_with_masks_say_that_their_masks_are_not_among_the_boxes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Datumaro's VOC writer (CVAT's "PASCAL VOC 1.1") makes an <object> of each rectangle only and writes an image's
    # masks to SegmentationClass/SegmentationObject, marking the XML <segmented>1</segmented>: the objects drawn with
    # the brush were read as background without a word.
    for index, (stem, segmented) in enumerate((("a", 1), ("b", 0), ("c", 1))):
        Image.new("RGB", (40, 30), (80 * index, 0, 0)).save(tmp_path / f"{stem}.jpg")
        xml = _datumaro_xml(f"{stem}.jpg", [("car", [2.0, 3.0, 10.0, 8.0], False)])
        (tmp_path / f"{stem}.xml").write_text(xml.replace("<segmented>0</segmented>", f"<segmented>{segmented}</segmented>"))

    datasets = [VocDataset(tmp_path, split, validation_fraction=0.3) for split in ("train", "validation")]

    (notice,) = {dataset.reading_notice for dataset in datasets}
    assert re.search(r"2 XML files written by CVAT \('[^']*[ac]\.xml', \.\.\.\) mark their images segmented", str(notice))
    assert "read as background. Export the task as COCO 1.0" in str(notice)
    assert main(["check-data", str(tmp_path), "validation_fraction=0.3"]) == 0
    assert "mark their images segmented" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("object_xml", "message"),
    [
        (
            "<object><name>car</name><difficult>0</difficult><polygon><x1>1</x1><y1>1</y1><x2>30</x2><y2>1</y2><x3>30</x3>"
            "<y3>20</y3></polygon></object>",
            r"object 2 \(car\) has no bndbox \(it has \['polygon'\]: a shape this layout does not read",
        ),
        (
            "<object><name>car</name><bndbox><xmin>1</xmin><ymin>1</ymin><ymax>20</ymax></bndbox></object>",
            r"object 2 \(car\) has a bndbox without xmax; a bndbox has",
        ),
        ("<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>20</ymax></bndbox></object>", r"object 2 has no name"),
    ],
    ids=["polygon", "no_xmax", "no_name"],
)
def test_an_object_that_cannot_be_read_as_a_box_is_an_error_naming_what_it_lacks(
    tmp_path: Path, object_xml: str, message: str
) -> None:
    Image.new("RGB", (40, 30)).save(tmp_path / "a.jpg")
    xml = _datumaro_xml("a.jpg", [("car", [2.0, 3.0, 10.0, 8.0], False)])
    (tmp_path / "a.xml").write_text(xml.removesuffix("</annotation>") + object_xml + "</annotation>")  # after the car

    with pytest.raises(DataError, match=r"a\.xml': " + message):
        parse_voc_xml(tmp_path / "a.xml", tmp_path)
