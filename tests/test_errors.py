"""The exception hierarchy: every library error lives in `torchbricks.errors` and is exported from `torchbricks`."""

from __future__ import annotations

import ast
import builtins
import inspect
from pathlib import Path

import pytest

import torchbricks
from torchbricks import errors
from torchbricks.errors import BrickError, did_you_mean, did_you_mean_key

PACKAGE_ROOT = Path(torchbricks.__file__).parent
ERROR_CLASSES = [value for _, value in inspect.getmembers(errors, inspect.isclass) if issubclass(value, BrickError)]


def test_every_error_class_of_the_package_is_defined_in_errors() -> None:
    # A class deriving from a builtin exception or from one of the library's (a metric named `...Error`, such as
    # torchmetrics' MeanAbsoluteError, is not an exception).
    exceptions = {error.__name__ for error in ERROR_CLASSES} | {
        name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
    }
    defined_elsewhere = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        if path.name == "errors.py" and path.parent == PACKAGE_ROOT:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and base.id in exceptions for base in node.bases
            ):
                defined_elsewhere.append(f"{path.relative_to(PACKAGE_ROOT)}:{node.name}")
    assert defined_elsewhere == []


def test_every_error_class_is_exported_from_torchbricks_and_errors() -> None:
    names = sorted(error.__name__ for error in ERROR_CLASSES)
    assert sorted(errors.__all__) == names
    assert [name for name in names if name not in torchbricks.__all__] == []
    assert all(getattr(torchbricks, name) is getattr(errors, name) for name in names)


def test_the_package_all_is_sorted_and_every_name_resolves() -> None:
    names = [name for name in torchbricks.__all__ if name != "__version__"]
    assert names == sorted(names)
    assert [name for name in torchbricks.__all__ if not hasattr(torchbricks, name)] == []


def test_an_unknown_package_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'torchbricks' has no attribute 'BrickColection'"):
        _ = torchbricks.BrickColection  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("torchbricks.datasets.readers", "DataError"),
        ("torchbricks._experiment", "ExperimentExistsError"),
        ("torchbricks.datasets.shapes", "ShapesDatasetExistsError"),
    ],
)
def test_moved_errors_keep_their_old_import_path(module: str, name: str) -> None:
    assert getattr(__import__(module, fromlist=[name]), name) is getattr(errors, name)


def test_every_error_is_a_brick_error_and_a_value_error() -> None:
    assert all(issubclass(error, ValueError) for error in ERROR_CLASSES)
    assert issubclass(errors.ShapesDatasetExistsError, FileExistsError)
    assert issubclass(errors.CheckpointNotADirectoryError, NotADirectoryError)


def test_did_you_mean_names_the_closest_candidate_or_nothing() -> None:
    assert did_you_mean("featurs", ["raw", "features"]) == " Did you mean 'features'?"
    assert did_you_mean("zzz", ["raw", "features"]) == ""


LOGGED_KEYS = [
    "train/loss",
    "train/loss_epoch",
    "train/losses/classification/loss_ce",
    "train/classification/accuracy",
    "validation/loss",
    "validation/losses/classification/loss_ce",
    "validation/losses/detection/loss_box",
    "validation/classification/accuracy",
    "validation/detection/map",
    "validation/detection/map_50",
    "validation/detection/mar_100",
    "validation/segmentation/mean_iou",
    "validation/presence/f1",
    "validation/head/*",  # a metric whose values are named once it computes: never suggested
]


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("validation/acc", "validation/classification/accuracy"),  # the whole string is closest to validation/loss
        ("validation/accuracy", "validation/classification/accuracy"),
        ("validation/classification/acuracy", "validation/classification/accuracy"),
        ("train/acc", "train/classification/accuracy"),
        ("validation/miou", "validation/segmentation/mean_iou"),
        ("validation/map50", "validation/detection/map_50"),
        ("validation/detection/mAP_50", "validation/detection/map_50"),
        ("validation/detection/mar", "validation/detection/mar_100"),
        ("validation/f1_score", "validation/presence/f1"),
        ("validation/loss_box", "validation/losses/detection/loss_box"),
        ("val/loss", "validation/loss"),
        ("val_loss", "validation/loss"),
        ("validation/los", "validation/loss"),
    ],
)
def test_did_you_mean_key_suggests_the_logged_key_a_misspelt_monitor_meant(typed: str, meant: str) -> None:
    assert did_you_mean_key(typed, LOGGED_KEYS) == f" Did you mean {meant!r}?"


def test_did_you_mean_key_names_every_key_that_fits_as_well_or_nothing() -> None:
    keys = ["validation/loss", "validation/cats/accuracy", "validation/dogs/accuracy"]

    assert did_you_mean_key("validation/acc", keys) == " Did you mean 'validation/cats/accuracy' or 'validation/dogs/accuracy'?"
    assert did_you_mean_key("zzz", keys) == ""
