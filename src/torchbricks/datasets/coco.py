"""COCO instances files: `bbox` `[x, y, w, h]`, category ids need not be contiguous, crowd regions ignored by training and
evaluation as COCO's evaluation ignores them; boxes alone or with a semantic mask drawn from the polygons (RLE masks need pycocotools, the `detection` extra)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torchbricks.datasets._reading import DataError, DataProblems, Transform, image_file_size, problems_or_raise
from torchbricks.datasets.boxes import BoxDataset, BoxImage, BoxObject, box_problem, clip_box

__all__ = ["CocoDataset", "coco_class_names"]

# --- COCO ---------------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"The COCO file {str(path)!r} does not exist.")
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"The COCO file {str(path)!r} cannot be read as JSON: {error}") from error
    missing = [key for key in ("images", "annotations", "categories") if key not in document]
    if missing:
        raise DataError(f"The COCO file {str(path)!r} lacks {missing}; an instances file has images, annotations, categories.")
    return document


def coco_class_names(path: Path | str) -> list[str]:
    """The category names of a COCO file, in the order of their ids (the contiguous index is the position).

    Raises:
        DataError: The file is missing, not JSON, or has no category.
    """
    path = Path(path)
    categories = sorted(_read_json(path)["categories"], key=lambda category: category["id"])
    if not categories:
        raise DataError(f"The COCO file {str(path)!r} has no category.")
    return [str(category["name"]) for category in categories]


# --- COCO ---------------------------------------------------------------------------------------------------------


class CocoDataset(BoxDataset):
    """COCO instances as samples `{"raw", "target_boxes" [N, 4] (x_min, y_min, x_max, y_max), "target_labels" [N]}`.

    With `with_masks`, each sample also has `target_mask` (int64 [H, W]: contiguous class index + 1, 0 the
    background) and `target_classes` (int64 [K]: 1 for each class with a box in the image). The mask is drawn in
    annotation order from each annotation's `segmentation`: an RLE, uncompressed (`counts` a list) or compressed
    (a string), is decoded by pycocotools exactly as its `annToMask` does; polygons are filled with Pillow, which
    also covers the pixels the outline passes through (as the shapes generator draws its images), so a polygon's
    mask is up to a pixel wider at its border than `annToMask`'s; an annotation without one fills its box.
    Category ids are mapped to contiguous indices in id order. A crowd annotation (`iscrowd: 1`) is a region that
    evaluation ignores, as COCO's own evaluation does: its box keeps the label `-2 - class index` (see `BoxDataset`),
    so the loss skips it and a detection on it is not a false positive; the mask and the classes present leave it out.

    Args:
        path_json: The instances file; image `file_name`s are relative to `image_root`.
        image_root: The folder image file names are relative to; the JSON file's folder when None.
        with_masks: Also give the semantic mask and the classes present (the multitask targets).
        transform: A `torchvision.transforms.v2` transform of `{"image", "boxes", "labels"[, "mask"]}`.
        problems: Where problems go; the first raises when None.

    Raises:
        DataError: A missing image, an unknown category or image id, a box outside its image, no image.
    """

    def __init__(
        self,
        path_json: Path | str,
        image_root: Path | str | None = None,
        with_masks: bool = False,
        transform: Transform | None = None,
        problems: DataProblems | None = None,
    ) -> None:
        problems = problems_or_raise(problems)
        self.path_json = Path(path_json)
        self.image_root = Path(image_root) if image_root is not None else self.path_json.parent
        document = _read_json(self.path_json)
        categories = sorted(document["categories"], key=lambda category: category["id"])
        self.category_ids = [int(category["id"]) for category in categories]
        self.images = self._read_images(document, problems)
        if not document["images"]:
            problems.report(f"The COCO file {str(self.path_json)!r} lists no image.")
        listed = {int(image["id"]) for image in document["images"]}
        index_of = {category_id: index for index, category_id in enumerate(self.category_ids)}
        for annotation in document["annotations"]:
            where = f"annotation {annotation.get('id')} in {str(self.path_json)!r}"
            record = self.images.get(int(annotation["image_id"]))
            if int(annotation["category_id"]) not in index_of:
                problems.report(
                    f"The {where} has category_id {annotation['category_id']}; the file's categories are {self.category_ids}."
                )
            elif record is None:
                if int(annotation["image_id"]) not in listed:
                    problems.report(f"The {where} names image_id {annotation['image_id']}, which the file does not list.")
            else:
                found = problems.guard(_coco_object, annotation, where, record)
                if found is not None:
                    crowd = bool(annotation.get("iscrowd", 0))
                    record.objects.append(BoxObject(found[0], index_of[int(annotation["category_id"])], found[1], crowd=crowd))
        self.ids = sorted(self.images)
        super().__init__(
            [self.images[image_id] for image_id in self.ids],
            [str(category["name"]) for category in categories],
            with_masks,
            transform,
        )

    def _read_images(self, document: dict[str, Any], problems: DataProblems) -> dict[int, BoxImage]:
        images: dict[int, BoxImage] = {}
        for image in document["images"]:
            path = self.image_root / image["file_name"]
            source = f"id {image['id']} in {str(self.path_json)!r}"
            if not path.is_file():
                problems.report(f"Image {str(path)!r} ({source}) does not exist.")
                continue
            if int(image["id"]) in images:
                problems.report(f"The image {source} is listed twice.")
                continue
            size: tuple[int, int] | None = (
                (int(image["width"]), int(image["height"])) if "width" in image and "height" in image else None
            )
            if size is None:  # optional in some exports: read from the file's header
                size = problems.guard(image_file_size, path)
            if size is not None:
                images[int(image["id"])] = BoxImage(path, size[0], size[1], source=repr(str(self.path_json)))
        return images


def _coco_object(annotation: dict[str, Any], where: str, record: BoxImage) -> tuple[tuple[float, float, float, float], Any]:
    """The clipped box and the segmentation of an annotation.

    Raises:
        DataError: The box is outside its image or the segmentation is neither polygons nor an RLE of its size.
    """
    x, y, w, h = (float(value) for value in annotation["bbox"])
    if box_problem((x, y, x + w, y + h), record.width, record.height):
        raise DataError(
            f"The {where} has bbox [x, y, w, h] = {annotation['bbox']}, outside (or empty in) its image "
            f"{str(record.path)!r} of {record.width}x{record.height}."
        )
    segmentation = annotation.get("segmentation")
    _check_segmentation(segmentation, where, record)
    return clip_box((x, y, x + w, y + h), record.width, record.height), segmentation


def _check_segmentation(segmentation: Any, where: str, image: BoxImage) -> None:
    """Passes a polygon list, an RLE of the image's size, or nothing (the box then stands in for the outline).

    Raises:
        DataError: Anything else.
    """
    if segmentation is None or isinstance(segmentation, list):
        return
    size = [image.height, image.width]
    if not isinstance(segmentation, dict) or not isinstance(segmentation.get("counts"), (list, str)):
        raise DataError(
            f"The {where} has segmentation {str(segmentation)[:80]!r}; expected a list of polygons or an RLE "
            "{'size': [height, width], 'counts': [...] or '...'}."
        )
    if [int(side) for side in segmentation.get("size", ())] != size:
        raise DataError(
            f"The {where} has an RLE segmentation of size {segmentation.get('size')} [height, width], but its image "
            f"{str(image.path)!r} is {size}."
        )
