"""`torchbricks export`: tiny trained experiments (1 epoch at 64 px on generated shapes) exported as one ONNX file,
run in onnxruntime on uint8 images and compared with the collection in PyTorch; the torch-free runtime on them."""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from torchbricks.__main__ import main
from torchbricks.datasets.shapes import write_shapes_dataset
from torchbricks.deploy import OnnxPredictor, metadata_path, resize_image
from torchbricks.tags import Stage
from torchbricks.trained_experiment import load_experiment

ROOT = Path(__file__).parent.parent
SRC = ROOT / "src"
TINY = ["trainer.max_epochs=1", "data.image_size=64", "data.batch_size=4", "n_visualized=0", "export_onnx=false"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes", num_train=8, num_val=4, image_size=64)


def _train(task: str, root: Path, folder: Path, *overrides: str) -> Path:
    arguments = ["train", f"task={task}", f"data.root={root}", f"experiment.path_experiments={folder}", "experiment.name=run"]
    assert main([*arguments, *TINY, *overrides]) == 0
    return folder / "run"


@pytest.fixture(scope="module")
def multitask(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Detection, segmentation and multilabel heads on one backbone, trained one epoch. The heatmap's last layer is
    then scaled up: after one epoch its scores all sit within 1e-4 of the 0.01 prior, below the decoder's threshold,
    and so close to one another that runtimes rounding differently would order them differently. Scaled, dozens of
    well-separated boxes pass the threshold, so top-k, NMS and the padding rows are exercised."""
    experiment = _train("multitask", shapes / "detection", tmp_path_factory.mktemp("multitask"))
    loaded = load_experiment(experiment)
    with torch.no_grad():
        loaded.collection["detection"]["detect"].model.heatmap.weight.mul_(200.0)
    loaded.collection.save_bricks(experiment / "bricks", exist_ok=True)
    return experiment


@pytest.fixture(scope="module")
def classification(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train("classification", shapes / "classification", tmp_path_factory.mktemp("classification"))


@pytest.fixture(scope="module")
def multitask_onnx(multitask: Path) -> Path:
    assert main(["export", str(multitask)]) == 0
    return multitask / "deploy.onnx"


def _uint8_images(batch_size: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (batch_size, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _collection_outputs(experiment: Path, images: torch.Tensor) -> dict[str, np.ndarray]:
    """The trained collection in PyTorch on the images as torchvision's ToDtype(scale=True) makes them floats."""
    from torchvision.transforms.v2.functional import to_dtype

    collection = load_experiment(experiment).collection
    with torch.no_grad():
        outputs = collection(named_inputs={"raw": to_dtype(images, torch.float32, scale=True)}, tags=Stage.EXPORT)
    return {name: value.numpy() for name, value in outputs.items() if isinstance(value, torch.Tensor)}


@pytest.mark.slow
@pytest.mark.parametrize("task", ["multitask", "classification"])
def test_the_exported_file_gives_the_collections_results_on_uint8_batches_of_two_sizes(
    task: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    import onnxruntime

    experiment = request.getfixturevalue(task)
    assert main(["export", str(experiment), "--out", str(tmp_path / "model.onnx")]) == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]

    assert [value.name for value in session.get_inputs()] == ["images"]
    for batch_size, seed in ((1, 1), (3, 2)):
        images = _uint8_images(batch_size, seed)
        actual = dict(zip(names, session.run(names, {"images": images.numpy()}), strict=True))
        expected = _collection_outputs(experiment, images)
        for name in names:
            assert actual[name].shape[0] == batch_size
            if not name.startswith("detection/"):
                np.testing.assert_allclose(actual[name], expected[name], atol=1e-4, rtol=0, err_msg=name)
        if "detection/labels" in names:
            for image in range(batch_size):
                kept = _same_boxes(
                    *(actual[f"detection/{name}"][image] for name in ("boxes", "scores", "labels")),
                    *(expected[f"detection/{name}"][image] for name in ("boxes", "scores", "labels")),
                )
                assert kept > 0  # boxes survived NMS: the comparison is not of padding only


def _same_boxes(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    boxes_ref: np.ndarray,
    scores_ref: np.ndarray,
    labels_ref: np.ndarray,
    tolerance: float = 1e-4,
) -> int:
    """Asserts one image's boxes after NMS (padding rows, label -1, left out) are the reference's within `tolerance`,
    in any order: candidates of equal score come out of top-k in an order that differs between runtimes. Returns how
    many."""
    kept, kept_ref = labels >= 0, labels_ref >= 0
    assert kept.sum() == kept_ref.sum()
    rows = np.concatenate([boxes[kept], scores[kept, None], labels[kept, None]], axis=1)
    reference = np.concatenate([boxes_ref[kept_ref], scores_ref[kept_ref, None], labels_ref[kept_ref, None]], axis=1)
    unmatched = list(range(len(reference)))
    for row in rows:
        gaps = [np.abs(row - reference[index]).max() for index in unmatched]
        best = int(np.argmin(gaps))
        assert gaps[best] <= tolerance, f"box {row} has no match in the reference"
        unmatched.pop(best)
    return int(kept.sum())


@pytest.mark.slow
def test_the_metadata_describes_the_input_the_outputs_and_the_heads(multitask: Path, multitask_onnx: Path) -> None:
    metadata = json.loads(metadata_path(multitask_onnx).read_text())

    assert metadata["input"] | {"meaning": None} == {
        "name": "images",
        "dtype": "uint8",
        "layout": "NCHW",
        "shape": ["batch", 3, 64, 64],
        "meaning": None,
    }
    assert metadata["image_size"] == [64, 64]
    assert metadata["class_names"] == ["circle", "square", "triangle"]
    coco = json.loads((Path(load_experiment(multitask).config.data.root) / "train.json").read_text())
    assert metadata["category_ids"] == sorted(category["id"] for category in coco["categories"])
    assert {head: entry["kind"] for head, entry in metadata["heads"].items()} == {
        "detection": "detection",
        "presence": "multilabel",
        "segmentation": "segmentation",
    }
    assert metadata["heads"]["segmentation"]["class_names"] == ["background", "circle", "square", "triangle"]
    assert sorted(metadata["outputs"]) == [
        "detection/boxes",
        "detection/labels",
        "detection/scores",
        "presence/present",
        "presence/probabilities",
        "segmentation/mask",
        "segmentation/probabilities",
    ]
    decoder = next(
        brick.model
        for path, brick in load_experiment(multitask).collection.iter_bricks()
        if path.startswith("detection/") and hasattr(getattr(brick, "model", None), "iou_threshold")
    )
    assert metadata["heads"]["detection"]["iou_threshold"] == decoder.iou_threshold  # what merging tiles suppresses at
    assert "-1 marks a padding row" in metadata["outputs"]["detection/labels"]
    assert metadata["torchbricks_version"] == __import__("torchbricks").__version__
    assert metadata["max_abs_difference_to_pytorch"] < 1e-4


@pytest.mark.slow
def test_image_size_exports_another_input_size(classification: Path, tmp_path: Path) -> None:
    assert main(["export", str(classification), "--image-size", "96", "--out", str(tmp_path / "m.onnx")]) == 0

    predictor = OnnxPredictor(tmp_path / "m.onnx")
    assert predictor.image_size == (96, 96)
    num_classes = len(predictor.class_names["classification"] or [])
    assert predictor.run(np.zeros((2, 3, 96, 96), dtype=np.uint8))["classification/probabilities"].shape == (2, num_classes)


def _stop_at_rename(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """From now on, the rename of a file onto `name` raises KeyboardInterrupt (Ctrl-C) instead."""
    rename = os.replace

    def stopped(source: str | Path, target: str | Path) -> None:
        if Path(target).name == name:
            raise KeyboardInterrupt
        rename(source, target)

    monkeypatch.setattr(os, "replace", stopped)


def test_an_export_stopped_before_its_model_is_renamed_leaves_the_earlier_export_whole_and_nothing_else(
    classification: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The earlier export's metadata was deleted first: stopped here, the earlier model was refused for lack of it
    path = tmp_path / "m.onnx"
    assert main(["export", str(classification), "--image-size", "96", "--out", str(path)]) == 0
    earlier = {name: (tmp_path / name).read_bytes() for name in ("m.onnx", "m.onnx.json")}
    _stop_at_rename(monkeypatch, "m.onnx")

    assert main(["export", str(classification), "--image-size", "64", "--out", str(path), "--overwrite"]) == 130
    monkeypatch.undo()

    assert {entry.name: entry.read_bytes() for entry in tmp_path.iterdir()} == earlier
    assert OnnxPredictor(path).image_size == (96, 96)


def test_an_export_stopped_after_its_model_is_renamed_leaves_the_new_model_read_with_its_own_metadata(
    classification: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The new model was beside no metadata (refused) or, had the renames gone the other way, beside the earlier's
    path = tmp_path / "m.onnx"
    assert main(["export", str(classification), "--image-size", "96", "--out", str(path)]) == 0
    _stop_at_rename(monkeypatch, "m.onnx.json")

    assert main(["export", str(classification), "--image-size", "64", "--out", str(path), "--overwrite"]) == 130
    monkeypatch.undo()

    assert [entry.name for entry in tmp_path.iterdir()] == ["m.onnx"]  # no copy of the earlier file's metadata beside it
    predictor = OnnxPredictor(path)
    assert predictor.image_size == (64, 64)
    assert predictor.run(np.zeros((1, 3, 64, 64), dtype=np.uint8))["classification/probabilities"].shape[0] == 1


_KILLED_AT_RENAME = """
import os, sys
from pathlib import Path
from torchbricks.deploy_export import export_deployable_onnx
rename = os.replace
def killed(source, target):
    if Path(target).name == sys.argv[3]:
        os._exit(9)  # as a kill: no exception, no cleanup
    rename(source, target)
os.replace = killed
export_deployable_onnx(sys.argv[1], sys.argv[2], image_size=64, overwrite=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("killed_at", "image_size"), [("m.onnx", 96), ("m.onnx.json", 64)])
def test_an_export_killed_at_either_rename_leaves_one_whole_model_and_a_folder_a_later_write_removes(
    killed_at: str, image_size: int, classification: Path, tmp_path: Path
) -> None:
    from torchbricks._files import STALE_TEMPORARY_SECONDS, remove_stale_temporaries

    path = tmp_path / "m.onnx"
    assert main(["export", str(classification), "--image-size", "96", "--out", str(path)]) == 0
    code = [sys.executable, "-c", _KILLED_AT_RENAME, str(classification), str(path), killed_at]
    process = subprocess.run(
        code, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "PYTHONPATH": str(SRC)}
    )
    assert process.returncode == 9, process.stderr

    assert OnnxPredictor(path).image_size == (image_size, image_size)
    assert not metadata_path(path).exists()  # the earlier copy was moved away before the model's rename, never left stale
    (left,) = [entry for entry in tmp_path.iterdir() if entry.name.startswith(".")]
    assert remove_stale_temporaries(tmp_path, now=time.time() + STALE_TEMPORARY_SECONDS + 1) == [left]
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["m.onnx"]


def test_the_exported_file_holds_its_metadata_and_the_copy_beside_it_is_the_same(classification: Path, tmp_path: Path) -> None:
    import onnx

    path = tmp_path / "m.onnx"
    assert main(["export", str(classification), "--out", str(path)]) == 0

    inside = {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}
    assert json.loads(inside["torchbricks"]) == json.loads(metadata_path(path).read_text())
    metadata_path(path).unlink()  # the copy is for reading: the runtime reads the file's own
    assert OnnxPredictor(path).class_names == {"classification": load_experiment(classification).class_names}


@pytest.mark.slow
def test_int8_export_is_close_to_float_and_reports_the_accuracy_change(
    classification: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(classification), "--out", str(tmp_path / "float.onnx")]) == 0
    assert main(["export", str(classification), "--quantize", "int8", "--out", str(tmp_path / "int8.onnx")]) == 0

    printed = capsys.readouterr().out
    assert "classification/accuracy: float32" in printed
    report = json.loads(metadata_path(tmp_path / "int8.onnx").read_text())["quantization"]
    assert report["evaluated_on"].startswith("the validation split")
    metrics = report["metrics"]
    assert metrics["change"]["classification/accuracy"] == pytest.approx(
        metrics["int8"]["classification/accuracy"] - metrics["float32"]["classification/accuracy"]
    )
    assert report["int8_file_bytes"] < report["float_file_bytes"] / 2
    images = _uint8_images(4, 3).numpy()
    expected = OnnxPredictor(tmp_path / "float.onnx").run(images)["classification/probabilities"]
    quantized = OnnxPredictor(tmp_path / "int8.onnx").run(images)["classification/probabilities"]
    np.testing.assert_allclose(quantized, expected, atol=0.05)


@pytest.mark.slow
def test_int8_without_the_data_calibrates_on_given_images_and_reports_agreement(
    classification: Path, shapes: Path, tmp_path: Path
) -> None:
    experiment = tmp_path / "moved"
    experiment.mkdir()
    for name in ("resolved_config.yaml", "experiment.json", "bricks"):
        os.symlink(classification / name, experiment / name)
    config = (experiment / "resolved_config.yaml").read_text().replace(str(shapes), str(tmp_path / "gone"))
    (experiment / "resolved_config.yaml").unlink()
    (experiment / "resolved_config.yaml").write_text(config)
    images = shapes / "classification" / "val" / "circle"

    assert main(["export", str(experiment), "--quantize", "int8"]) == 2  # no data and no --images
    assert main(["export", str(experiment), "--quantize", "int8", "--images", str(images)]) == 0
    report = json.loads((experiment / "deploy_int8.onnx.json").read_text())["quantization"]
    assert "no labels" in report["evaluated_on"]
    assert report["agreement"]["classification/probabilities:max_abs_difference"] < 0.05


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["NOT_AN_EXPERIMENT"], "is not a trained experiment folder"),
        (["EXPERIMENT", "--image-size", "0"], "image_size must be a positive int"),
        (["EXPERIMENT", "--out", "EXISTING"], r"already exist; pass overwrite=True \(--overwrite\)"),
        (["EXPERIMENT", "--images", "EXPERIMENT"], r"calibration images for quantize='int8' \(--quantize int8\)"),
    ],
)
def test_a_bad_export_is_one_error_line_and_writes_nothing(
    arguments: list[str], message: str, classification: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "existing.onnx"
    existing.write_text("keep")
    before = sorted(path.name for path in [*tmp_path.iterdir(), *classification.iterdir()])
    replaced = {"NOT_AN_EXPERIMENT": str(tmp_path), "EXPERIMENT": str(classification), "EXISTING": str(existing)}

    assert main(["export", *[replaced.get(argument, argument) for argument in arguments]]) == 2

    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("torchbricks: error: ")
    assert re.search(message, error)
    assert sorted(path.name for path in [*tmp_path.iterdir(), *classification.iterdir()]) == before
    assert existing.read_text() == "keep"


def test_the_export_check_compares_boxes_as_sets_whatever_their_order() -> None:
    from torchbricks.deploy_export import _set_difference

    reference = np.array([[0.0, 0, 10, 10, 0.5, 1], [5, 5, 20, 20, 0.5, 0]])

    assert _set_difference(reference[::-1] + 1e-6, reference) == pytest.approx(1e-6)
    assert _set_difference(reference[:1], reference) == float("inf")


def test_export_help_answers_without_importing_torch() -> None:
    code = (
        "import sys\nfrom torchbricks.__main__ import main\ntry:\n    main(['export', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(name for name in ('torch', 'onnxruntime', 'numpy') if name in sys.modules))"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)

    assert process.returncode == 0, process.stderr
    assert "--quantize {int8}" in process.stdout
    assert process.stdout.strip().endswith("[]")


# --- the torch-free runtime ----------------------------------------------------------------------------------------

_WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None  # `import torch` raises ImportError from here on
import numpy as np
import torchbricks.deploy
from torchbricks.deploy import OnnxPredictor
try:
    import torch
except ImportError:
    pass
else:
    raise SystemExit("torch was importable")
images = list(np.load(sys.argv[2]).values())
results = OnnxPredictor(sys.argv[1]).predict(images)
flat = {f"{index}|{head}|{key}": value for index, result in enumerate(results)
        for head, values in result.items() for key, value in values.items() if key != "kind"}
np.savez(sys.argv[3], **flat)
print(sorted(name for name in sys.modules if name.startswith("torchbricks")))
"""


@pytest.mark.slow
def test_the_runtime_runs_without_torch_and_gives_the_bricks_results_at_the_images_size(
    multitask: Path, multitask_onnx: Path, shapes: Path, tmp_path: Path
) -> None:
    with Image.open(sorted((shapes / "detection" / "images" / "val").glob("*.png"))[0]) as picture:
        original = np.asarray(picture.convert("RGB"))
    images = {"0": original, "1": np.asarray(Image.fromarray(original).resize((100, 80)))}  # 64x64 and 80x100
    np.savez(tmp_path / "images.npz", **images)
    environment = {**os.environ, "PYTHONPATH": str(SRC)}

    process = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH, str(multitask_onnx), str(tmp_path / "images.npz"), str(tmp_path / "out.npz")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )

    assert process.returncode == 0, process.stderr
    assert "torchbricks.deploy" in process.stdout
    predicted = np.load(tmp_path / "out.npz")
    for index, image in images.items():
        height, width = image.shape[:2]
        resized = torch.from_numpy(resize_image(image, (64, 64)).transpose(2, 0, 1).copy())[None]
        expected = _collection_outputs(multitask, resized)
        scale = np.array([width / 64, height / 64, width / 64, height / 64], dtype=np.float32)
        boxes, scores, labels = (predicted[f"{index}|detection|{name}"] for name in ("boxes", "scores", "labels"))
        assert (boxes.dtype, labels.dtype) == (np.float32, np.int64)
        assert (labels >= 0).all()
        reference_boxes = np.minimum(np.maximum(expected["detection/boxes"][0] * scale, 0), [width, height, width, height])
        outside = (reference_boxes[:, 2] <= reference_boxes[:, 0]) | (reference_boxes[:, 3] <= reference_boxes[:, 1])
        reference_labels = np.where(outside, -1, expected["detection/labels"][0])  # cut to the image, as predict does
        reference = (reference_boxes.astype(np.float32), expected["detection/scores"][0], reference_labels)
        assert _same_boxes(boxes, scores, labels, *reference) == len(labels) > 0
        mask = torch.from_numpy(expected["segmentation/mask"]).float()[None]
        expected_mask = torch.nn.functional.interpolate(mask, size=(height, width), mode="nearest")[0, 0].long()  # as predict
        np.testing.assert_array_equal(predicted[f"{index}|segmentation|mask"], expected_mask.numpy())
        np.testing.assert_allclose(predicted[f"{index}|presence|probabilities"], expected["presence/probabilities"][0], atol=1e-4)


_NOT_INSTALLED = {"torch", "torchvision", "torchmetrics", "lightning", "pytorch_lightning"}

_PYTHON_M_TORCHBRICKS_WITHOUT_TORCH = f"""
import atexit
import runpy
import sys
from importlib.abc import MetaPathFinder

NOT_INSTALLED = {sorted(_NOT_INSTALLED)!r}


class NotInstalled(MetaPathFinder):  # as on a machine without them: every import of them or their modules fails
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in NOT_INSTALLED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
atexit.register(lambda: print("imported:", sorted({{name.partition(".")[0] for name in sys.modules}}), file=sys.stderr))
runpy.run_module("torchbricks", run_name="__main__", alter_sys=True)  # python -m torchbricks ARGUMENTS
"""


def _python_m_torchbricks_without_torch(arguments: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    wrapper = folder / "without_torch.py"
    wrapper.write_text(_PYTHON_M_TORCHBRICKS_WITHOUT_TORCH)
    environment = {**os.environ, "PYTHONPATH": str(SRC)}
    command = [sys.executable, str(wrapper), *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300, check=False)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _boxes_by_file(path: Path) -> dict[str, np.ndarray]:
    """predictions.json as file name -> rows [category id, score, x, y, width, height]."""
    rows: dict[str, list[list[float]]] = {}
    for row in json.loads(path.read_text()):
        rows.setdefault(row["file_name"], []).append([row["category_id"], row["score"], *row["bbox"]])
    return {name: np.array(values) for name, values in rows.items()}


def _probabilities(text: str) -> dict[str, float]:
    return {name: float(value) for name, value in (item.rsplit(":", 1) for item in text.split(";"))}


@pytest.mark.slow
@pytest.mark.parametrize("task", ["multitask", "classification"])
def test_predict_onnx_runs_where_torch_is_not_installed_and_writes_the_bricks_predictions(
    task: str, request: pytest.FixtureRequest, shapes: Path, tmp_path: Path
) -> None:
    import csv

    experiment = request.getfixturevalue(task)
    exported = tmp_path / "model.onnx"
    assert main(["export", str(experiment), "--out", str(exported)]) == 0
    images = shapes / ("detection/images/val" if task == "multitask" else "classification/val")  # 64 px: the model's size
    common = [str(images), "--workers", "0"]
    assert main(["predict", str(experiment), *common, "--out", str(tmp_path / "bricks")]) == 0
    assert main(["predict", str(experiment), *common, "--out", str(tmp_path / "with_torch"), "--onnx", str(exported)]) == 0

    process = _python_m_torchbricks_without_torch(
        ["predict", str(experiment), *common, "--out", str(tmp_path / "without_torch"), "--onnx", str(exported)], tmp_path
    )

    assert process.returncode == 0, process.stderr
    imported = set(ast.literal_eval(process.stderr.rpartition("imported:")[2].strip()))
    assert "onnxruntime" in imported
    assert not imported & _NOT_INSTALLED
    without_torch, bricks = tmp_path / "without_torch", tmp_path / "bricks"
    assert _files(without_torch) == _files(tmp_path / "with_torch")  # the same files, byte for byte
    assert sorted(_files(without_torch)) == sorted(_files(bricks))
    if task == "multitask":
        by_onnx, by_bricks = (
            _boxes_by_file(without_torch / "detection_predictions.json"),
            _boxes_by_file(bricks / "detection_predictions.json"),
        )
        assert sorted(by_onnx) == sorted(by_bricks)
        for name, rows in by_bricks.items():  # [category, score, box]: the same boxes in any order (ties in top-k)
            assert len(by_onnx[name]) == len(rows) > 0
            for row in by_onnx[name]:
                assert np.abs(rows - row).max(axis=1).min() <= 2e-3, f"{name}: {row} is not a box of the bricks"
        for path in sorted((bricks / "segmentation_masks").iterdir()):
            mask = np.asarray(Image.open(without_torch / "segmentation_masks" / path.name))
            np.testing.assert_array_equal(mask, np.asarray(Image.open(path)))
    column = "presence/probabilities" if task == "multitask" else "top5"
    rows_onnx, rows_bricks = (list(csv.DictReader((folder / "predictions.csv").open())) for folder in (without_torch, bricks))
    assert [row["file"] for row in rows_onnx] == [row["file"] for row in rows_bricks]
    for row, reference in zip(rows_onnx, rows_bricks, strict=True):
        probabilities, expected = _probabilities(row[column]), _probabilities(reference[column])
        assert probabilities.keys() == expected.keys()
        assert max(abs(probabilities[name] - expected[name]) for name in expected) <= 2e-4


@pytest.mark.slow
def test_the_readme_deploy_example_runs_on_an_exported_file(multitask_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The README's other blocks run in a fresh folder (tests/test_readme.py); this one needs an exported experiment,
    # so it is fenced `py` and run here, from a folder holding `build/experiments/shapes/deploy.onnx`.
    (block,) = [block for block in _py_blocks(ROOT / "README.md") if "OnnxPredictor" in block]
    folder = multitask_onnx.parent.parent / "readme"
    (folder / "build" / "experiments").mkdir(parents=True, exist_ok=True)
    link = folder / "build" / "experiments" / "shapes"
    if not link.exists():
        link.symlink_to(multitask_onnx.parent)
    Image.fromarray(np.full((120, 160, 3), 128, dtype=np.uint8)).save(folder / "photo.jpg")
    monkeypatch.chdir(folder)

    exec(compile(block, "<README deploy block>", "exec"), {"__name__": "readme"})


def _py_blocks(path: Path) -> list[str]:
    return re.findall(r"^```py\n(.*?)^```", path.read_text(), flags=re.DOTALL | re.MULTILINE)


def _mosaics(shapes: Path, folder: Path) -> Path:
    """Two images larger than the 64 px model from the 64 px validation images: a 2 x 2 mosaic of 128 x 128, cut into
    overlapping windows at 0, 32 and 64, and a strip 40 px high, whose windows are padded below to the tile."""
    pictures = [np.asarray(Image.open(path).convert("RGB")) for path in sorted((shapes / "detection/images/val").glob("*.png"))]
    mosaic = np.concatenate([np.concatenate(pictures[:2], axis=1), np.concatenate(pictures[2:4], axis=1)], axis=0)
    folder.mkdir()
    Image.fromarray(mosaic).save(folder / "mosaic.png")
    Image.fromarray(mosaic[10:50, :, :][:, np.r_[0:128, 0:22]]).save(folder / "strip.png")
    return folder


@pytest.mark.slow
def test_predict_onnx_tile_runs_where_torch_is_not_installed_and_merges_the_tiles_as_the_bricks_do(
    multitask: Path, multitask_onnx: Path, shapes: Path, tmp_path: Path
) -> None:
    import csv

    # Tiles of 64, the model's input size: neither backend resizes a tile (their resizings differ by a grey level), so
    # the two see the same pixels and differ only by onnxruntime's arithmetic against torch's (1e-5 on the outputs).
    common = [str(_mosaics(shapes, tmp_path / "images")), "--workers", "0", "--tile", "64", "--overlap", "0.2"]
    assert main(["predict", str(multitask), *common, "--out", str(tmp_path / "bricks")]) == 0
    assert main(["predict", str(multitask), *common, "--out", str(tmp_path / "with_torch"), "--onnx", str(multitask_onnx)]) == 0

    process = _python_m_torchbricks_without_torch(
        ["predict", str(multitask), *common, "--out", str(tmp_path / "without_torch"), "--onnx", str(multitask_onnx)], tmp_path
    )

    assert process.returncode == 0, process.stderr
    assert not set(ast.literal_eval(process.stderr.rpartition("imported:")[2].strip())) & _NOT_INSTALLED
    without_torch, bricks = tmp_path / "without_torch", tmp_path / "bricks"
    assert _files(without_torch) == _files(tmp_path / "with_torch")  # the same files, byte for byte
    assert sorted(_files(without_torch)) == sorted(_files(bricks))
    by_onnx, by_bricks = (_boxes_by_file(folder / "detection_predictions.json") for folder in (without_torch, bricks))
    assert sorted(by_onnx) == sorted(by_bricks) == [str(tmp_path / "images" / name) for name in ("mosaic.png", "strip.png")]
    for name, rows in by_bricks.items():  # [category, score, box] in any order: equal scores leave top-k in any order
        assert len(by_onnx[name]) == len(rows) > 0
        for row in by_onnx[name]:
            gap = np.abs(rows - row)
            # An object seen by two overlapping tiles at a saturated score (1.0 in one runtime, 1 - 6e-8 in the other)
            # keeps either tile's box, which differ by a fraction of a pixel: with torch on two threads that happens.
            saturated = (row[1] >= 0.999) & (gap[:, 0] == 0) & (gap[:, 1] <= 2e-3) & (gap[:, 2:].max(axis=1) <= 0.5)
            assert gap.max(axis=1).min() <= 2e-3 or saturated.any(), f"{name}: {row} is not a box of the bricks"
    for path in sorted((bricks / "segmentation_masks").iterdir()):
        # Equal but for pixels where two classes' mean probabilities lie within the runtimes' 1e-6 of each other (one
        # pixel of a million on a 1024 x 1024 mosaic): at most 0.1 %.
        mask, expected = (np.asarray(Image.open(folder / "segmentation_masks" / path.name)) for folder in (without_torch, bricks))
        assert mask.shape == {"mosaic.png": (128, 128), "strip.png": (40, 150)}[path.name]
        assert len(np.unique(expected)) > 1
        assert (mask != expected).mean() <= 1e-3
    rows_onnx, rows_bricks = (list(csv.DictReader((folder / "predictions.csv").open())) for folder in (without_torch, bricks))
    for row, reference in zip(rows_onnx, rows_bricks, strict=True):
        probabilities, expected = (
            _probabilities(row["presence/probabilities"]),
            _probabilities(reference["presence/probabilities"]),
        )
        assert max(abs(probabilities[name] - expected[name]) for name in expected) <= 2e-4


@pytest.mark.slow
def test_predict_onnx_tiles_resized_to_the_input_size_map_back_to_the_bricks_boxes_and_masks(
    multitask: Path, multitask_onnx: Path, shapes: Path, tmp_path: Path
) -> None:
    # Tiles of 96 read by a 64 px model: each window is resized, so the boxes and masks go back through the scale
    # twice, once per backend. Their resizings differ by a grey level, so scores differ a little: boxes are compared
    # by place, masks by their share of equal pixels.
    common = [str(_mosaics(shapes, tmp_path / "images")), "--workers", "0", "--tile", "96", "--overlap", "0.25"]
    assert main(["predict", str(multitask), *common, "--out", str(tmp_path / "bricks")]) == 0
    assert main(["predict", str(multitask), *common, "--out", str(tmp_path / "onnx"), "--onnx", str(multitask_onnx)]) == 0

    by_onnx, by_bricks = (_boxes_by_file(tmp_path / folder / "detection_predictions.json") for folder in ("onnx", "bricks"))
    assert sorted(by_onnx) == sorted(by_bricks)
    for name, rows in by_bricks.items():
        confident = rows[rows[:, 1] >= 0.5]
        assert len(confident) > 0, name
        for row in confident:  # a box of the bricks has its ONNX twin: same class, within 3 px on every side
            # 3 px is 2 px of the 64 px model's input (the tiles are read at 1.5 times less): a box edge near a
            # window's border moved 2.16 px between the backends once (CI, 2026-12-06); a window put at the wrong
            # place or scale moves every box by 8 px or more
            twins = by_onnx[name][by_onnx[name][:, 0] == row[0]]
            assert np.abs(twins[:, 2:] - row[2:]).max(axis=1).min() <= 3.0, f"{name}: {row} has no ONNX twin"
    for path in sorted((tmp_path / "bricks" / "segmentation_masks").iterdir()):
        masks = tmp_path / "onnx" / "segmentation_masks", tmp_path / "bricks" / "segmentation_masks"
        mask, expected = (np.asarray(Image.open(folder / path.name)) for folder in masks)
        assert mask.shape == expected.shape == {"mosaic.png": (128, 128), "strip.png": (40, 150)}[path.name]
        assert len(np.unique(expected)) > 1
        assert (mask != expected).mean() <= 0.02


@pytest.mark.slow
def test_predict_onnx_tile_reads_images_beyond_pillows_pixel_limit(
    multitask: Path, multitask_onnx: Path, shapes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = _mosaics(shapes, tmp_path / "images")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 7000)  # the mosaic's 16384 pixels, over twice that: refused
    onnx = ["--onnx", str(multitask_onnx), "--workers", "0", "--pictures", "none"]

    assert main(["predict", str(multitask), str(images), "--out", str(tmp_path / "whole"), *onnx]) == 0
    assert "TORCHBRICKS_MAX_IMAGE_PIXELS=0" in (tmp_path / "whole" / "skipped.txt").read_text()
    assert main(["predict", str(multitask), str(images), "--out", str(tmp_path / "tiled"), *onnx, "--tile", "64"]) == 0
    assert not (tmp_path / "tiled" / "skipped.txt").exists()
    assert (tmp_path / "tiled" / "segmentation_masks" / "mosaic.png").is_file()


# --- a multilabel head deciding at a threshold of its own ------------------------------------------------------------


def _multilabel_at(folder: Path, threshold: float) -> Path:
    """An experiment whose multilabel head gives the probabilities 0.9, 0.6 and 0.3 on every image, deciding at
    `threshold` (`MultiLabelClassifier(threshold=...)`, as a config override sets it)."""
    from helpers import hand_built_experiment

    from torchbricks.heads.multilabel import MultiLabelTaskHead

    head = MultiLabelTaskHead.describe(num_classes=3, in_channels=8, features_name="features", targets_name="targets")
    head["classify"]["model"]["threshold"] = threshold

    def constant(collection: Any) -> None:
        classifier = collection["tags"]["classify"].model.fc
        classifier.weight.zero_()
        classifier.bias.copy_(torch.logit(torch.tensor([0.9, 0.6, 0.3])))

    return hand_built_experiment(folder, {"tags": head}, ["a", "b", "c"], prepare=constant)


@pytest.mark.parametrize("onnx", [False, True])
@pytest.mark.parametrize("tile", [None, 16])
def test_multilabel_present_is_decided_at_the_heads_own_threshold_in_files_pictures_and_onnx(
    tmp_path: Path, onnx: bool, tile: int | None
) -> None:
    experiment = _multilabel_at(tmp_path / "run", threshold=0.7)
    Image.new("RGB", (40, 24), (90, 120, 30)).save(tmp_path / "photo one.png")
    out = tmp_path / "out"
    assert main(["export", str(experiment)]) == 0

    arguments = ["predict", str(experiment), str(tmp_path / "photo one.png"), "--out", str(out), "--pictures", "none"]
    assert main(arguments + (["--onnx"] if onnx else []) + (["--tile", str(tile)] if tile else [])) == 0

    (row,) = csv.DictReader((out / "predictions.csv").open())
    assert row["present"] == "a"  # b's 0.6 is below the head's 0.7 (it was written present at 0.5)
    assert row["probabilities"] == "a:0.9000;b:0.6000;c:0.3000"
    if onnx:
        (result,) = OnnxPredictor(experiment / "deploy.onnx").predict([np.zeros((24, 40, 3), np.uint8)], tile=tile)
        assert result["tags"]["present"].tolist() == [1, 0, 0]
    metadata = json.loads(metadata_path(experiment / "deploy.onnx").read_text())
    assert metadata["heads"]["tags"]["threshold"] == pytest.approx(0.7)


# --- points and count heads: exported, predicted and written like the others -----------------------------------------


def _points_and_count(folder: Path, image_size: int = 32) -> Path:
    """An experiment of a points head (stride 4, its heatmap scaled up so that a few dozen peaks pass the decoder's
    threshold) and a count head on one backbone, as `+head@model.bricks.count=count` adds it."""
    from helpers import hand_built_experiment

    from torchbricks.heads.count import CountTaskHead
    from torchbricks.heads.points import PointsTaskHead

    points = PointsTaskHead.describe(
        num_classes=2, in_channels=8, features_name="features", stride=4, target_points_name="p", target_labels_name="l"
    )
    count = CountTaskHead.describe(in_channels=8, features_name="features", target_labels_name="l")

    def confident(collection: Any) -> None:
        collection["spots"]["detect"].model.heatmap.weight.mul_(40.0)
        collection["spots"]["detect"].model.heatmap.bias.fill_(0.0)

    heads = {"spots": points, "count": count}
    return hand_built_experiment(folder, heads, ["dot", "cross"], image_size=image_size, prepare=confident)


def _bricks_outputs(experiment: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    collection = load_experiment(experiment).collection
    raw = torch.from_numpy(np.array(images)).float() / 255.0  # a copy: a resized image may be read-only
    with torch.no_grad():
        outputs = collection(named_inputs={"raw": raw}, tags=Stage.INFERENCE, return_inputs=False)
    return {name: value.numpy() for name, value in outputs.items() if isinstance(value, torch.Tensor)}


def test_points_and_count_heads_are_exported_and_give_the_bricks_outputs(tmp_path: Path) -> None:
    experiment = _points_and_count(tmp_path / "run")
    assert main(["export", str(experiment)]) == 0

    metadata = json.loads(metadata_path(experiment / "deploy.onnx").read_text())
    assert {head: entry["kind"] for head, entry in metadata["heads"].items()} == {"count": "count", "spots": "points"}
    assert metadata["heads"]["spots"]["class_names"] == ["dot", "cross"]
    assert sorted(metadata["outputs"]) == ["count/count", "spots/labels", "spots/points", "spots/scores"]
    images = np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    exported = OnnxPredictor(experiment / "deploy.onnx").run(images)
    expected = _bricks_outputs(experiment, images)
    kept = expected["spots/labels"] >= 0  # padding rows (label -1) below the threshold may come in any order
    assert kept.sum() > 10  # points to compare, not only padding
    np.testing.assert_allclose(exported["count/count"], expected["count/count"], rtol=1e-5)
    np.testing.assert_array_equal(exported["spots/labels"], expected["spots/labels"])
    np.testing.assert_allclose(exported["spots/points"][kept], expected["spots/points"][kept], atol=1e-4)
    np.testing.assert_allclose(exported["spots/scores"][kept], expected["spots/scores"][kept], atol=1e-5)


@pytest.mark.parametrize("onnx", [False, True])
def test_predict_writes_the_points_in_the_images_pixels_and_the_count(tmp_path: Path, onnx: bool) -> None:
    experiment = _points_and_count(tmp_path / "run")
    assert main(["export", str(experiment)]) == 0
    big = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)  # 2 and 3 times the model's 32 x 32
    Image.fromarray(big).save(tmp_path / "field.png")
    out = tmp_path / "out"

    assert main(["predict", str(experiment), str(tmp_path / "field.png"), "--out", str(out)] + (["--onnx"] if onnx else [])) == 0

    if onnx:  # each runtime's resize to the model's size: Pillow's without torch, torchvision's with the bricks
        image = resize_image(big, (32, 32)).transpose(2, 0, 1)
    else:
        from torchvision.transforms.v2 import functional

        image = functional.resize(torch.from_numpy(big).permute(2, 0, 1), [32, 32], antialias=True).numpy()
    expected = _bricks_outputs(experiment, image[None])
    kept = expected["spots/labels"][0] >= 0
    rows = json.loads((out / "spots_points.json").read_text())
    assert len(rows) == kept.sum() > 0
    np.testing.assert_allclose([row["point"] for row in rows], expected["spots/points"][0][kept] * [3, 2], atol=2e-3)
    assert [row["category_name"] for row in rows] == [["dot", "cross"][label] for label in expected["spots/labels"][0][kept]]
    (row,) = csv.DictReader((out / "predictions.csv").open())
    assert float(row["count/count"]) == pytest.approx(float(expected["count/count"][0]), abs=1e-4)
    assert (out / "drawn" / "field.jpg").is_file()


@pytest.mark.parametrize("onnx", [False, True])
def test_tiles_leave_a_count_head_out_saying_so_once_and_predict_the_others(
    tmp_path: Path, onnx: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = _points_and_count(tmp_path / "run")
    assert main(["export", str(experiment)]) == 0
    for name in ("a", "b"):
        Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    out = tmp_path / "out"
    arguments = ["predict", str(experiment), str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--out", str(out)]

    assert main([*arguments, "--tile", "32", *(["--onnx"] if onnx else [])]) == 0

    error = capsys.readouterr().err
    assert error.count("warning: Tiled prediction leaves out the count head(s) ['count']: the counts of overlapping") == 1
    assert not (out / "predictions.csv").exists()  # no count column of a count that was not predicted
    assert len(json.loads((out / "points.json").read_text())) > 0


def test_tiles_are_refused_when_the_only_head_is_a_count(tmp_path: Path) -> None:
    from helpers import hand_built_experiment

    from torchbricks.errors import BrickError
    from torchbricks.heads.count import CountTaskHead
    from torchbricks.predict import BrickBackend

    count = CountTaskHead.describe(in_channels=8, features_name="features", target_labels_name="l")
    experiment = load_experiment(hand_built_experiment(tmp_path / "run", {"count": count}, ["dot"], image_size=32))
    with pytest.warns(UserWarning, match="leaves out the count head"), pytest.raises(BrickError, match="no other head"):
        BrickBackend(experiment, tile=32)


# --- the image files users have: both backends read, predict, refuse and write them alike -----------------------------


def _files_users_have(shapes: Path, folder: Path) -> dict[str, np.ndarray]:
    """Writes into `folder` the files users point predict at, made of the 64 px validation pictures; returns, per file
    name, the picture it shows (upright, RGB, on white where transparent) as an independent reference of its reading.
    Beside them a text file (not a source) and a file named .jpg that is no image (skipped, listed)."""
    pictures = [np.asarray(Image.open(path).convert("RGB")) for path in sorted((shapes / "detection/images/val").glob("*.png"))]
    pair = np.concatenate(pictures[:2], axis=1)  # 64 x 128
    row = np.concatenate([pictures[3]] * 15, axis=1)[12:52, :900]
    folder.mkdir()
    shown: dict[str, np.ndarray] = {}

    def exif(orientation: int) -> Image.Exif:
        tags = Image.Exif()
        tags[0x0112] = orientation
        return tags

    # a phone's photographs, stored sideways with the EXIF orientation saying how to turn them upright
    jpeg = {"quality": 95, "subsampling": 0}  # no chroma subsampling: within 4 grey levels of the picture on average
    Image.fromarray(pair).transpose(Image.Transpose.ROTATE_90).save(folder / "phone six.JPG", exif=exif(6), **jpeg)
    Image.fromarray(pair).transpose(Image.Transpose.ROTATE_270).save(folder / "phone eight.jpg", exif=exif(8), **jpeg)
    shown["phone six.JPG"] = shown["phone eight.jpg"] = pair
    palette = Image.fromarray(pair).quantize(16)
    palette.save(folder / "palette.PNG")
    shown["palette.PNG"] = np.asarray(palette.convert("RGB"))
    grey = np.asarray(Image.fromarray(pair).convert("L"))
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "grey 16 bits.png")  # I;16: its upper 8 bits are `grey`
    Image.fromarray(grey).save(folder / "grey.png")
    shown["grey 16 bits.png"] = shown["grey.png"] = np.repeat(grey[..., None], 3, axis=2)
    alpha = np.where(np.arange(128) < 64, 255, 0).astype(np.uint8)[None, :].repeat(64, axis=0)  # right half transparent
    Image.fromarray(np.dstack([pair, alpha]), "RGBA").save(folder / "transparent.png")
    shown["transparent.png"] = np.where(alpha[..., None] == 255, pair, 255).astype(np.uint8)
    Image.fromarray(pair).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    shown["cmyk.jpg"] = pair
    Image.fromarray(pictures[2][20:27, 10:21]).save(folder / "tiny.png")  # 7 x 11, smaller than the 64 px model
    shown["tiny.png"] = pictures[2][20:27, 10:21]
    Image.fromarray(row).save(folder / "strip.png")  # 40 x 900
    Image.fromarray(np.ascontiguousarray(row.transpose(1, 0, 2))).save(folder / "standing strip.png")  # 900 x 40
    shown["strip.png"], shown["standing strip.png"] = row, row.transpose(1, 0, 2)
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(b"no JPEG at all")
    return shown


def _predicted_files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("tile", [None, 80])
@pytest.mark.parametrize("task", ["multitask", "classification"])
def test_predict_reads_predicts_refuses_and_writes_the_files_users_have_alike_with_the_bricks_and_onnx(
    task: str, tile: int | None, request: pytest.FixtureRequest, shapes: Path, tmp_path: Path
) -> None:
    from torchbricks._image_sources import ImageSourceDataset, collect_image_sources
    from torchbricks.deploy import read_image
    from torchbricks.predict import BrickBackend

    experiment = request.getfixturevalue(task)
    exported = tmp_path / "model.onnx"
    assert main(["export", str(experiment), "--out", str(exported)]) == 0
    shown = _files_users_have(shapes, tmp_path / "my photos")
    common = [str(tmp_path / "my photos"), "--workers", "0", *(["--tile", str(tile)] if tile else [])]
    assert main(["predict", str(experiment), *common, "--out", str(tmp_path / "bricks")]) == 0
    assert main(["predict", str(experiment), *common, "--out", str(tmp_path / "onnx"), "--onnx", str(exported)]) == 0

    # read alike: upright, RGB, 8 bits, on white where transparent, by predict and by the runtime's read_image
    sources = collect_image_sources([tmp_path / "my photos"])
    assert sorted(source.path.name for source in sources) == sorted([*shown, "broken.jpg"])  # notes.txt is no source
    images = {}
    for index, source in enumerate(sources):
        _, image, reason = ImageSourceDataset(sources)[index]
        if source.path.name == "broken.jpg":
            assert image is None
            assert "cannot identify image file" in reason
            continue
        np.testing.assert_array_equal(read_image(source.path), image)
        assert image.shape == shown[source.path.name].shape
        lossy = 4 if source.path.suffix.lower() == ".jpg" else 0  # JPEG's error (turned the wrong way: 69)
        assert np.abs(image.astype(int) - shown[source.path.name]).mean() <= lossy, source.path.name
        images[source.path.name] = image
    # the same files, the unreadable one listed alike
    bricks, onnx = _predicted_files(tmp_path / "bricks"), _predicted_files(tmp_path / "onnx")
    assert sorted(bricks) == sorted(onnx)
    assert bricks["skipped.txt"] == onnx["skipped.txt"]
    assert "broken.jpg" in bricks["skipped.txt"].decode()
    assert "notes.txt" not in bricks["skipped.txt"].decode()
    assert {name for name in bricks if name.startswith("drawn/")} == {f"drawn/{Path(name).stem}.jpg" for name in shown}
    # the same predictions: each backend on the images as predict read them
    predictor = OnnxPredictor(exported)
    backend = BrickBackend(load_experiment(experiment), tile=tile)
    names = sorted(images)
    by_bricks = backend.predict([images[name] for name in names])
    by_onnx = predictor.predict([images[name] for name in names], tile=tile)
    for name, result, reference in zip(names, by_onnx, by_bricks, strict=True):
        height, width = images[name].shape[:2]
        assert result.keys() == reference.keys()
        for head, values in reference.items():
            if values["kind"] == "detection":
                assert len(result[head]["labels"]) == len(values["labels"]), (name, head)
                predicted = (result[head][key] for key in ("boxes", "scores", "labels"))
                expected = (values[key] for key in ("boxes", "scores", "labels"))
                assert _same_boxes(*predicted, *expected, tolerance=1e-3) == len(values["labels"])
            elif values["kind"] == "segmentation":
                assert result[head]["mask"].shape == (height, width)
                assert (result[head]["mask"] != values["mask"]).mean() <= 1e-3, (name, head)
            else:
                np.testing.assert_allclose(result[head]["probabilities"], values["probabilities"], atol=1e-4, err_msg=name)
    rows_bricks, rows_onnx = (list(csv.DictReader(io.StringIO(files["predictions.csv"].decode()))) for files in (bricks, onnx))
    assert [row["file"] for row in rows_onnx] == [row["file"] for row in rows_bricks]
    if task == "classification":
        assert [row["class"] for row in rows_onnx] == [row["class"] for row in rows_bricks]
