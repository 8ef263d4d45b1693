"""Test helpers: the shapes generator's COCO detection folder rewritten in the YOLO and Pascal VOC layouts, written
here from the formats' descriptions (not with the readers under test); YOLO also as labelImg saves it (images and
their .txt files side by side, `classes.txt`) and as Label Studio exports it (`images/`, `labels/`, `classes.txt`);
COCO as Roboflow, CVAT, COCO itself and Label Studio lay it out (`coco_as_tools_write_it`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np


def _splits(coco_root: Path) -> dict[str, dict[str, Any]]:
    return {split: json.loads((coco_root / f"{split}.json").read_text()) for split in ("train", "val")}


def _objects(document: dict[str, Any]) -> dict[int, list[tuple[int, list[float]]]]:
    """Image id -> (contiguous class index, COCO bbox) of its non-crowd annotations."""
    index_of = {category["id"]: index for index, category in enumerate(sorted(document["categories"], key=lambda c: c["id"]))}
    objects: dict[int, list[tuple[int, list[float]]]] = {image["id"]: [] for image in document["images"]}
    for annotation in document["annotations"]:
        if not annotation.get("iscrowd", 0):
            objects[annotation["image_id"]].append((index_of[annotation["category_id"]], annotation["bbox"]))
    return objects


def class_names_of(document: dict[str, Any]) -> list[str]:
    return [category["name"] for category in sorted(document["categories"], key=lambda c: c["id"])]


def coco_to_yolo(coco_root: Path, out: Path, names_as_dict: bool = False) -> Path:
    """`out/data.yaml`, `out/images/{train,val}/*` and `out/labels/{train,val}/*.txt` (class cx cy w h, normalised)."""
    splits = _splits(coco_root)
    for split, document in splits.items():
        objects = _objects(document)
        (out / "images" / split).mkdir(parents=True)
        (out / "labels" / split).mkdir(parents=True)
        for image in document["images"]:
            name = Path(image["file_name"]).name
            shutil.copy(coco_root / image["file_name"], out / "images" / split / name)
            width, height = image["width"], image["height"]
            lines = [
                f"{label} {(x + w / 2) / width!r} {(y + h / 2) / height!r} {w / width!r} {h / height!r}"
                for label, (x, y, w, h) in objects[image["id"]]
            ]
            if lines:  # an image without objects has no label file
                (out / "labels" / split / f"{Path(name).stem}.txt").write_text("\n".join(lines) + "\n")
    names = class_names_of(splits["train"])
    if names_as_dict:
        listed = "\n" + "\n".join(f"  {index}: {name}" for index, name in enumerate(names))
    else:
        listed = f" [{', '.join(names)}]"
    (out / "data.yaml").write_text(f"path: {out}\ntrain: images/train\nval: images/val\nnc: {len(names)}\nnames:{listed}\n")
    return out


COCO_TOOLS = ("roboflow", "cvat", "cvat_default", "coco2017", "label_studio")


def coco_as_tools_write_it(coco_root: Path, out: Path, tool: str) -> Path:
    """The shapes' COCO files and images (`train.json`, `val.json`, `images/{train,val}/*`) rewritten as `tool` writes
    COCO: `roboflow` (`{train,valid}/_annotations.coco.json`, images beside, bare file names, and the category Roboflow
    adds to every export: id 0 named after the project, the supercategory of the others, used by no annotation),
    `cvat` (Datumaro's `annotations/instances_{train,val}.json`, `images/{train,val}/*`), `cvat_default` (a task without subsets:
    `annotations/instances_default.json`, `images/*`, both splits in one pool), `coco2017`
    (`annotations/instances_{train,val}2017.json`, `{train,val}2017/*`), `label_studio` (one pool: `result.json` with
    `images/*`, file names with Windows separators `images\\<name>`, UTF-8 with a byte-order mark). Pools name each
    image `<split>_<name>` (the splits reuse names)."""
    splits = _splits(coco_root)
    pooled = tool in ("cvat_default", "label_studio")
    documents: dict[str, dict[str, Any]] = {}
    for split, document in splits.items():
        images = []
        for image in document["images"]:
            name = Path(image["file_name"]).name
            if pooled:
                name = f"{split}_{name}"
            folder, file_name = {
                "roboflow": (out / {"train": "train", "val": "valid"}[split], name),
                "cvat": (out / "images" / split, name),
                "cvat_default": (out / "images", name),
                "coco2017": (out / f"{split}2017", name),
                "label_studio": (out / "images", f"images\\{name}"),
            }[tool]
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(coco_root / image["file_name"], folder / name)
            images.append({**image, "file_name": file_name})
        documents[split] = {**document, "images": images}
        if tool == "roboflow":
            project = {"id": 0, "name": "shapes-Xy3z", "supercategory": "none"}
            categories = [{**category, "supercategory": project["name"]} for category in document["categories"]]
            documents[split]["categories"] = [project, *categories]
    if pooled:  # one file: the validation images and annotations after the training ones, with ids that stay unique
        train, val = documents["train"], documents["val"]
        shift_image = max(image["id"] for image in train["images"]) + 1
        shift_annotation = max((item["id"] for item in train["annotations"]), default=0) + 1
        documents = {
            "train": {
                **train,
                "images": train["images"] + [{**image, "id": image["id"] + shift_image} for image in val["images"]],
                "annotations": train["annotations"]
                + [
                    {**item, "id": item["id"] + shift_annotation, "image_id": item["image_id"] + shift_image}
                    for item in val["annotations"]
                ],
            }
        }
    for split, document in documents.items():
        path = {
            "roboflow": out / {"train": "train", "val": "valid"}[split] / "_annotations.coco.json",
            "cvat": out / "annotations" / f"instances_{split}.json",
            "cvat_default": out / "annotations" / "instances_default.json",
            "coco2017": out / "annotations" / f"instances_{split}2017.json",
            "label_studio": out / "result.json",
        }[tool]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document), encoding="utf-8-sig" if tool == "label_studio" else "utf-8")
    return out


def yolo_without_splits(yolo_root: Path, out: Path, tool: str) -> Path:
    """The images and label files of a `coco_to_yolo` folder in one pool with `classes.txt`, without `data.yaml`:
    `tool="labelimg"` puts each image and its .txt side by side in `out`, `tool="label_studio"` puts them under
    `out/images` and `out/labels`."""
    images, labels = (out, out) if tool == "labelimg" else (out / "images", out / "labels")
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for image in sorted((yolo_root / "images").rglob("*.png")):  # named <split>_<name>: the splits reuse names
        shutil.copy(image, images / f"{image.parent.name}_{image.name}")
        label = yolo_root / "labels" / image.parent.name / f"{image.stem}.txt"
        if label.is_file():
            shutil.copy(label, labels / f"{image.parent.name}_{label.name}")
    names = yolo_root.joinpath("data.yaml").read_text().split("names: [", 1)[1].split("]", 1)[0].split(", ")
    (out / "classes.txt").write_text("\n".join(names) + "\n")
    return out


def yolo_to_darknet(yolo_root: Path, out: Path, with_valid: bool = True, prefix: str = "data/") -> Path:
    """A `coco_to_yolo` folder as CVAT's "YOLO 1.1" export writes it: `obj.data`, `obj.names`, `train.txt` (and
    `valid.txt`) listing `<prefix>obj_<subset>_data/<image>`, each image with its label file in `obj_<subset>_data/`."""
    names = yolo_root.joinpath("data.yaml").read_text().split("names: [", 1)[1].split("]", 1)[0].split(", ")
    (out).mkdir(parents=True, exist_ok=True)
    (out / "obj.names").write_text("\n".join(names) + "\n")
    settings = [f"classes = {len(names)}", "names = obj.names", "train = train.txt"]
    for split, subset in (("train", "train"), *((("val", "valid"),) if with_valid else ())):
        folder = out / f"obj_{subset}_data"
        folder.mkdir()
        listed = []
        for image in sorted((yolo_root / "images" / split).glob("*.png")):
            shutil.copy(image, folder / image.name)
            label = yolo_root / "labels" / split / f"{image.stem}.txt"
            if label.is_file():
                shutil.copy(label, folder / label.name)
            listed.append(f"{prefix}obj_{subset}_data/{image.name}")
        (out / f"{subset}.txt").write_text("\n".join(listed) + "\n")
    if with_valid:
        settings.append("valid = valid.txt")
    (out / "obj.data").write_text("\n".join([*settings, "backup = backup/  # optional"]) + "\n")
    return out


def voc_xml(filename: str, width: int, height: int, objects: list[tuple[str, list[float], bool]]) -> str:
    """A VOC annotation; boxes `[x, y, w, h]` in pixel edges become 1-based inclusive indices."""
    parts = [f"<annotation><folder>JPEGImages</folder><filename>{escape(filename)}</filename>"]
    parts.append(f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>")
    for name, (x, y, w, h), difficult in objects:
        parts.append(
            f"<object><name>{escape(name)}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>{int(difficult)}</difficult><bndbox><xmin>{x + 1!r}</xmin><ymin>{y + 1!r}</ymin>"
            f"<xmax>{x + w!r}</xmax><ymax>{y + h!r}</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    return "\n".join(parts)


def coco_to_voc(coco_root: Path, out: Path, flat: bool = False, per_split: bool = False) -> Path:
    """`out/JPEGImages`, `out/Annotations/*.xml`, `out/ImageSets/Main/{train,val}.txt` (ids `<split>_<stem>`), or with
    `flat` the images and XML files side by side in `out` and no split files, or with `per_split` side by side in
    `out/train` and `out/valid` (as Roboflow exports VOC)."""
    splits = _splits(coco_root)
    names = class_names_of(splits["train"])
    images = out if flat else out / "JPEGImages"
    annotations = out if flat else out / "Annotations"
    for split, document in splits.items():
        if per_split:
            images = annotations = out / {"train": "train", "val": "valid"}[split]
        for folder in (images, annotations):
            folder.mkdir(parents=True, exist_ok=True)
        objects = _objects(document)
        ids = []
        for image in document["images"]:
            image_id = f"{split}_{Path(image['file_name']).stem}"
            filename = f"{image_id}{Path(image['file_name']).suffix}"
            shutil.copy(coco_root / image["file_name"], images / filename)
            found = [(names[label], bbox, False) for label, bbox in objects[image["id"]]]
            (annotations / f"{image_id}.xml").write_text(voc_xml(filename, image["width"], image["height"], found))
            ids.append(image_id)
        if not flat and not per_split:
            (out / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
            (out / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return out


OUTLINE_SIDE = 32
"""The side of the images `write_outline_data` writes (a power of two: normalised YOLO coordinates are exact)."""
OUTLINE_CLASSES = ["cat", "dog"]


def outline_objects(index: int, crowd: bool = True) -> list[dict[str, Any]]:
    """The objects of image `index` of `write_outline_data`, in annotation order, in pixels: a `cat` triangle, a `dog`
    rectangle over it (drawn later), a `dog` with a box (x, y, w, h) and no outline that the rectangle overlaps and,
    with `crowd`, a `cat` crowd region (a rectangle as an uncompressed RLE, `rle_rows` x `rle_columns`) under the
    triangle. Each image shifts them by `index` pixels across."""
    shift = index % 4
    objects: list[dict[str, Any]] = [
        {"label": 0, "polygon": [2 + shift, 2, 16 + shift, 2, 2 + shift, 16]},
        {"label": 1, "polygon": [8 + shift, 6, 18 + shift, 6, 18 + shift, 14, 8 + shift, 14]},
        {"label": 1, "box": [14 + shift, 10, 10, 12]},
    ]
    if crowd:
        objects.append({"label": 0, "crowd": True, "rle_rows": (12, 30), "rle_columns": (0, 6)})
    return objects


def _rectangle_rle(rows: tuple[int, int], columns: tuple[int, int]) -> dict[str, Any]:
    """COCO's uncompressed RLE (column-major runs, zeros first) of a rectangle of an OUTLINE_SIDE image."""
    counts, position = [], 0
    for column in range(OUTLINE_SIDE):
        if columns[0] <= column < columns[1]:
            start, end = column * OUTLINE_SIDE + rows[0], column * OUTLINE_SIDE + rows[1]
            counts += [start - position, end - start]
            position = end
    counts.append(OUTLINE_SIDE * OUTLINE_SIDE - position)
    return {"size": [OUTLINE_SIDE, OUTLINE_SIDE], "counts": counts}  # rows within the height: no runs to merge


YOLO_POOLS = {"label_studio": ("images", "labels"), "labelimg": ("", "")}
"""The YOLO layouts of one pool of images `write_outline_data` also writes, with `classes.txt`: the folders of the
images and of their label files (Label Studio's export: `images/` and `labels/`; labelImg: side by side in the root)."""


def write_outline_data(root: Path, layout: str, images: int = 4, outlines: bool = True) -> Path:
    """Segmentation data as labelling tools export outlines, written from the formats' descriptions: `coco`
    (`train.json`, `val.json` with polygons, an empty segmentation for the object without outline, a crowd region as
    RLE; `images/{train,val}/*.png`) or `yolo` (`data.yaml`, `images/{train,val}`, `labels/{train,val}/*.txt`, one
    `class x1 y1 ...` line per outline and `class cx cy w h` for the object without one), or one pool of images with
    `classes.txt` (`YOLO_POOLS`: `label_studio`, `labelimg`; the images `train_<i>.png` and `val_<i>.png`, split at
    random by the reader). `images` per split, the objects of `outline_objects` (image `<split>_<i>` draws those of
    `i`); without `outlines`, every object is a box (box detection data)."""
    from PIL import Image

    generator = np.random.default_rng(0)
    pool = YOLO_POOLS.get(layout)
    for split in ("train", "val"):
        image_folder = root / pool[0] if pool is not None else root / "images" / split
        image_folder.mkdir(parents=True, exist_ok=True)
        document: dict[str, Any] = {
            "images": [],
            "annotations": [],
            "categories": [{"id": 10 + index, "name": name} for index, name in enumerate(OUTLINE_CLASSES)],
        }
        lines_of: dict[str, list[str]] = {}
        for index in range(images):
            name = f"{split}_{index}.png"
            pixels = generator.integers(0, 256, (OUTLINE_SIDE, OUTLINE_SIDE, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(image_folder / name)
            document["images"].append(
                {"id": index + 1, "file_name": f"images/{split}/{name}", "width": OUTLINE_SIDE, "height": OUTLINE_SIDE}
            )
            lines = lines_of.setdefault(name, [])
            for item in outline_objects(index, crowd=layout == "coco"):
                annotation, line = _outline_annotation(item, outlines)
                document["annotations"].append({"id": len(document["annotations"]) + 1, "image_id": index + 1, **annotation})
                lines += [line] if line is not None else []
        if layout == "coco":
            (root / f"{split}.json").write_text(json.dumps(document))
        else:
            label_folder = root / pool[1] if pool is not None else root / "labels" / split
            label_folder.mkdir(parents=True, exist_ok=True)
            for name, lines in lines_of.items():
                (label_folder / f"{Path(name).stem}.txt").write_text("\n".join(lines) + "\n")
    if layout == "yolo":
        (root / "data.yaml").write_text(f"train: images/train\nval: images/val\nnames: [{', '.join(OUTLINE_CLASSES)}]\n")
    if pool is not None:
        (root / "classes.txt").write_text("\n".join(OUTLINE_CLASSES) + "\n")
    return root


def outline_image_index(path: Path | str) -> int:
    """The index of `outline_objects` that the image `<split>_<index>.png` of `write_outline_data` draws."""
    return int(Path(path).stem.rsplit("_", 1)[1])


def _outline_annotation(item: dict[str, Any], outlines: bool) -> tuple[dict[str, Any], str | None]:
    """The COCO annotation (without ids) and the YOLO line (None for a crowd region) of an `outline_objects` item."""
    if "polygon" in item:
        xs, ys = item["polygon"][0::2], item["polygon"][1::2]
        box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    elif "box" in item:
        box = item["box"]
    else:
        (top, bottom), (left, right) = item["rle_rows"], item["rle_columns"]
        box = [left, top, right - left, bottom - top]
    annotation: dict[str, Any] = {"bbox": box, "category_id": 10 + item["label"]}
    if item.get("crowd"):
        return annotation | {"iscrowd": 1, "segmentation": _rectangle_rle(item["rle_rows"], item["rle_columns"])}, None
    outline = item.get("polygon") if outlines else None
    annotation |= {"iscrowd": 0, "segmentation": [outline] if outline else []}
    if outline:
        return annotation, f"{item['label']} " + " ".join(str(value / OUTLINE_SIDE) for value in outline)
    x, y, w, h = (value / OUTLINE_SIDE for value in box)
    return annotation, f"{item['label']} {x + w / 2} {y + h / 2} {w} {h}"


def expected_outline_mask(index: int, crowd: bool = True) -> np.ndarray:
    """The mask of image `index` of `write_outline_data` as pycocotools draws its annotations (`frPyObjects` of the
    polygons, of the box, `decode` of the RLE): 255 for the crowd region and the box of the object without outline,
    then each outline as class index + 1 in annotation order, a later one over an earlier one."""
    import warnings

    from pycocotools import mask as mask_utils

    def decoded(rle: Any) -> np.ndarray:
        with warnings.catch_warnings():  # pycocotools' decode predates numpy 2's `copy` keyword
            warnings.simplefilter("ignore", DeprecationWarning)
            return mask_utils.decode(mask_utils.merge(rle)).astype(bool)

    side = OUTLINE_SIDE
    mask = np.zeros((side, side), dtype=np.int64)
    objects = outline_objects(index, crowd)
    for item in objects:
        if item.get("crowd"):
            mask[decoded([mask_utils.frPyObjects(_rectangle_rle(item["rle_rows"], item["rle_columns"]), side, side)])] = 255
        elif "box" in item:
            mask[decoded(mask_utils.frPyObjects(np.array([item["box"]], dtype=np.float64), side, side))] = 255
    for item in objects:
        if "polygon" in item:
            mask[decoded(mask_utils.frPyObjects([item["polygon"]], side, side))] = item["label"] + 1
    return mask


def expected_box_mask(index: int, crowd: bool = True) -> np.ndarray:
    """The mask of image `index` of `write_outline_data` without outlines (box data) as pycocotools draws its boxes
    (`frPyObjects` of each `bbox`, `decode`): 255 for the crowd region, then each box as class index + 1 in
    annotation order, a later one over an earlier one."""
    import warnings

    from pycocotools import mask as mask_utils

    side = OUTLINE_SIDE
    mask = np.zeros((side, side), dtype=np.int64)
    objects = outline_objects(index, crowd)
    for item in sorted(objects, key=lambda item: not item.get("crowd")):  # the crowd region first, under the boxes
        box = _outline_annotation(item, outlines=False)[0]["bbox"]
        with warnings.catch_warnings():  # pycocotools' decode predates numpy 2's `copy` keyword
            warnings.simplefilter("ignore", DeprecationWarning)
            drawn = mask_utils.decode(mask_utils.frPyObjects(np.array([box], dtype=np.float64), side, side))[..., 0]
        mask[drawn.astype(bool)] = 255 if item.get("crowd") else item["label"] + 1
    return mask
