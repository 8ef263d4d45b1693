from __future__ import annotations

import hashlib
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from torchvision.datasets import ImageFolder

from torchbricks.datasets.coco import CocoDataset
from torchbricks.lightning.datamodules import CocoDataModule, ImageFolderDataModule, SegmentationFolderDataModule

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import suite_data
from suite_data import FORMS, SETS, ShapesSpec, write_photo_patches, write_set, write_shapes_variant

SMALL = ShapesSpec(
    classes=("circle", "ellipse", "pentagon", "hexagon"),
    image_size=48,
    num_train=12,
    num_val=4,
    num_test=4,
    distractors=2,
    seed=5,
)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_a_variant_is_read_by_torchvision_pycocotools_and_the_library_data_modules(tmp_path: Path) -> None:
    root = write_shapes_variant(tmp_path / "variant", SMALL)

    for split, count in (("train", 12), ("val", 4), ("test", 4)):
        folder = ImageFolder(str(root / "classification" / split))
        assert folder.classes == sorted(SMALL.classes)
        assert len(folder) == count
    assert ImageFolderDataModule(root / "classification", image_size=48).class_names == sorted(SMALL.classes)
    assert SegmentationFolderDataModule(root / "segmentation", image_size=48).class_names == ["background", *SMALL.classes]
    assert CocoDataModule(root / "detection", image_size=48).class_names == list(SMALL.classes)

    coco = COCO(str(root / "detection" / "test.json"))
    classes = ["background", *SMALL.classes]
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        stem = Path(info["file_name"]).stem
        mask = np.asarray(Image.open(root / "segmentation" / "test" / "masks" / f"{stem}.png"))
        assert np.array_equal(
            np.asarray(Image.open(root / "segmentation" / "test" / "images" / f"{stem}.png")),
            np.asarray(Image.open(root / "detection" / info["file_name"])),
        )
        painted = np.zeros_like(mask)
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
            drawn = coco.annToMask(annotation).astype(bool)
            name = coco.loadCats(annotation["category_id"])[0]["name"]
            painted[drawn] = classes.index(name)
        assert np.array_equal(painted, mask)  # the outlines are the pixels drawn: COCO's rule gives the mask PNG


def test_the_coco_outlines_painted_in_order_give_the_mask_png_also_where_forms_overlap(tmp_path: Path) -> None:
    spec = ShapesSpec(**{**SMALL.__dict__, "occlusion": 0.6, "max_objects": 4})
    root = write_shapes_variant(tmp_path / "variant", spec, ("segmentation", "detection"))

    dataset = CocoDataset(root / "detection" / "train.json", with_masks=True)  # multitask's masks

    overlapping = 0
    for index, record in enumerate(dataset.records):
        mask = np.asarray(Image.open(root / "segmentation" / "train" / "masks" / record.path.name))
        assert np.array_equal(dataset[index]["target_mask"].numpy(), mask), record.path.name
        boxes = [item.box for item in record.objects]
        overlapping += any(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3] for a in boxes for b in boxes if a != b)
    assert overlapping  # forms did overlap: the later one is painted over the earlier, in the PNG as in the masks


def test_the_multitask_masks_of_a_variant_are_the_same_read_through_the_cache(tmp_path: Path) -> None:
    import torch
    from torchvision.transforms import v2

    from torchbricks.datasets.augmentations import RandomRotationTightBoxes
    from torchbricks.datasets.image_cache import ResizedImageCache
    from torchbricks.datasets.transforms import create_transform

    spec = ShapesSpec(**{**SMALL.__dict__, "occlusion": 0.6, "max_objects": 4, "textured_background": True})
    root = write_shapes_variant(tmp_path / "variant", spec, ("detection",)) / "detection"
    transform = create_transform(96, [v2.RandomHorizontalFlip(), RandomRotationTightBoxes()], boxes=True)
    plain, cached = (CocoDataset(root / "train.json", with_masks=True, transform=transform) for _ in range(2))
    cached.image_cache = ResizedImageCache((96, 96), megabytes=16)  # twice the size, as the packaged multitask reads it

    for epoch in range(2):
        for index in range(len(plain)):
            torch.manual_seed(epoch * 100 + index)
            expected = plain[index]["target_mask"]
            torch.manual_seed(epoch * 100 + index)
            assert torch.equal(cached[index]["target_mask"], expected), (epoch, index)
    assert cached.image_cache.cached_images == 2 * len(plain)


def test_every_class_is_in_every_classification_split(tmp_path: Path) -> None:
    root = write_shapes_variant(
        tmp_path / "variant", ShapesSpec(classes=tuple(FORMS)[:6], image_size=32, num_train=6, num_val=6, num_test=6)
    )

    for split in ("train", "val", "test"):
        assert all(len(list(folder.iterdir())) == 1 for folder in (root / "classification" / split).iterdir())


def test_the_same_spec_writes_the_same_files_and_another_seed_other_images(tmp_path: Path) -> None:
    first = _digest(write_shapes_variant(tmp_path / "a", SMALL, ("detection",)))
    second = _digest(write_shapes_variant(tmp_path / "b", SMALL, ("detection",)))
    other = _digest(write_shapes_variant(tmp_path / "c", ShapesSpec(**{**SMALL.__dict__, "seed": 6}), ("detection",)))

    assert first == second
    assert first["detection/train.json"] != other["detection/train.json"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a", "b", "c"]  # no temporary folder left


def test_look_alike_forms_differ_only_by_their_aspect_or_corners() -> None:
    def aspect(points: list[tuple[float, float]]) -> float:
        xs, ys = [x for x, _ in points], [y for _, y in points]
        return (max(xs) - min(xs)) / (max(ys) - min(ys))

    assert aspect(FORMS["circle"](0.0)) == pytest.approx(1.0, abs=0.01)
    assert aspect(FORMS["ellipse"](0.0)) == pytest.approx(1.3, abs=0.01)
    square, rectangle = FORMS["square"](0.0), FORMS["rectangle"](0.0)
    assert aspect(square) == pytest.approx(1.0)
    assert aspect(rectangle) == pytest.approx(1.25)
    assert (len(FORMS["pentagon"](0.0)), len(FORMS["hexagon"](0.0)), len(FORMS["octagon"](0.0))) == (5, 6, 8)


def test_imbalance_skews_only_the_training_split(tmp_path: Path) -> None:
    spec = ShapesSpec(
        classes=("square", "triangle", "star"), image_size=32, num_train=120, num_val=30, num_test=30, imbalance=10.0
    )
    root = write_shapes_variant(tmp_path / "imbalanced", spec, ("classification",))

    counts = {name: len(list((root / "classification" / "train" / name).iterdir())) for name in spec.classes}
    assert counts["square"] > 4 * counts["star"] >= 4
    assert spec.class_probabilities("test") == pytest.approx([1 / 3] * 3)


def test_small_objects_reach_about_eight_pixels() -> None:
    spec = suite_data.SMALL_CLUTTER
    image, _mask, objects = suite_data.draw_variant_image(spec, np.random.default_rng(0), 8, (0.035, 0.035), [0] * 8)

    sides = [max(x for x, _ in drawn.polygon) - min(x for x, _ in drawn.polygon) for drawn in objects]
    assert image.size == (128, 128)
    assert objects
    assert all(8 <= side <= 10 for side in sides)


def test_a_square_turned_by_a_few_degrees_needs_upright_forms() -> None:
    with pytest.raises(ValueError, match="only by their rotation; set upright=True"):
        ShapesSpec(classes=("square", "tilted_square"))
    with pytest.raises(ValueError, match=r"unknown forms \['hexagn'\]"):
        ShapesSpec(classes=("pentagon", "hexagn"))

    spec = ShapesSpec(classes=("square", "tilted_square"), image_size=64, upright=True)
    for label, degrees in ((0, 0.0), (1, 15.0)):
        for seed in range(3):
            _, _, (drawn,) = suite_data.draw_variant_image(spec, np.random.default_rng(seed), 1, (0.3, 0.3), [label])
            (x0, y0), (x1, y1) = drawn.polygon[:2]
            assert math.degrees(math.atan2(y1 - y0, x1 - x0)) % 90 == pytest.approx(degrees, abs=1e-6)


def test_photo_patches_come_from_disjoint_columns_of_the_real_photos(tmp_path: Path) -> None:
    root = write_photo_patches(tmp_path / "photos", per_class=(4, 2, 2))

    train = ImageFolder(str(root / "classification" / "train"))
    assert train.classes == sorted(f"{photo}_{third}" for photo in ("china", "flower") for third in ("top", "middle", "bottom"))
    assert Counter(train.targets) == dict.fromkeys(range(6), 4)
    assert Image.open(train.samples[0][0]).size == (32, 32)


def test_held_out_sets_are_marked_and_the_tuning_ones_are_not() -> None:
    held_out = sorted(name for name, suite_set in SETS.items() if suite_set.held_out)
    assert held_out == [
        "faces",
        "imbalanced_few",
        "imbalanced_few_fresh",
        "lookalike",
        "lookalike_fresh",
        "lookalike_pairs",
        "lookalike_pairs_fresh",
        "photo_patches",
        "small_clutter",
        "small_clutter_fresh",
        "textures",
        "tilted",
        "tilted_fresh",
        "trees",
    ]
    tuning = ("shapes", "variety", "few", "small_forms", "aspect_pairs", "digits", "polygons")
    assert {suite_set.held_out for name, suite_set in SETS.items() if name in tuning} == {False}


def test_a_fresh_set_has_its_held_out_sets_knobs_and_classes_but_other_images(tmp_path: Path) -> None:
    original = write_set(tmp_path, "tilted", micro=True) / "classification" / "train"
    fresh = write_set(tmp_path, "tilted_fresh", micro=True) / "classification" / "train"

    assert sorted(path.name for path in fresh.iterdir()) == sorted(path.name for path in original.iterdir())
    first = sorted(original.rglob("*.png"))[0]
    assert Image.open(first).size == Image.open(fresh / first.relative_to(original)).size
    assert np.asarray(Image.open(first)).tolist() != np.asarray(Image.open(fresh / first.relative_to(original))).tolist()
