"""int8 quantization of a deployable file, on a hand-made ONNX convolution checked against numpy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from torchbricks._deploy_quantize import onnx_session, quantize_int8
from torchbricks.deploy import INPUT_NAME
from torchbricks.errors import BrickError

onnx = pytest.importorskip("onnx")
SIZE = (12, 12)


def _conv_file(path: Path, weights: np.ndarray) -> Path:
    """uint8 images [B, 3, H, W] -> /255 -> a 1x1 convolution to 4 channels, output `head/probabilities`."""
    helper = onnx.helper
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["float"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Div", ["float", "scale"], ["scaled"]),
        helper.make_node("Conv", ["scaled", "weights"], ["head/probabilities"]),
    ]
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.UINT8, ["batch", 3, *SIZE])],
        [helper.make_tensor_value_info("head/probabilities", onnx.TensorProto.FLOAT, ["batch", 4, *SIZE])],
        [
            onnx.numpy_helper.from_array(np.array(255.0, dtype=np.float32), "scale"),
            onnx.numpy_helper.from_array(weights, "weights"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _images(folder: Path, count: int) -> list[np.ndarray]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8) for _ in range(count)]
    for index, array in enumerate(arrays):
        Image.fromarray(array).save(folder / f"{index}.png")
    return arrays


def test_the_int8_file_computes_the_convolution_within_a_few_percent_of_its_range(tmp_path: Path) -> None:
    weights = np.random.default_rng(1).normal(size=(4, 3, 1, 1)).astype(np.float32)
    float_file = _conv_file(tmp_path / "float.onnx", weights)
    images = _images(tmp_path / "images", 6)

    report: dict[str, Any] = quantize_int8(None, SIZE, float_file, tmp_path / "int8.onnx", tmp_path, tmp_path / "images", 4)  # type: ignore[arg-type]

    assert report["calibration"] == f"4 images of {tmp_path / 'images'}"
    model = onnx.load(tmp_path / "int8.onnx")
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in model.graph.node}
    batch = np.stack([image.transpose(2, 0, 1) for image in images[:4]])  # the calibration images
    expected = np.einsum("oc,bchw->bohw", weights[:, :, 0, 0], batch.astype(np.float32) / 255.0)
    (actual,) = onnx_session(tmp_path / "int8.onnx").run(None, {INPUT_NAME: batch})
    (float_actual,) = onnx_session(float_file).run(None, {INPUT_NAME: batch})
    span = expected.max() - expected.min()
    np.testing.assert_allclose(float_actual, expected, atol=1e-5)
    assert 0 < np.abs(actual - expected).max() < 0.03 * span  # int8 weights and uint8 activations: about 1/255 each
    assert np.abs(actual - expected).mean() < 0.005 * span
    assert report["agreement"]["head/probabilities:max_abs_difference"] == pytest.approx(
        float(np.abs(actual - float_actual).max()), rel=1e-5
    )


def test_an_images_folder_without_images_is_an_error_naming_the_suffixes(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "notes.txt").write_text("no image")
    with pytest.raises(BrickError, match=r"The images folder '.*images' has no image \(\.jpg, \.jpeg, \.jpe, \.jfif, \.png"):
        quantize_int8(None, SIZE, tmp_path / "f.onnx", tmp_path / "i.onnx", tmp_path, tmp_path / "images", 4)  # type: ignore[arg-type]


def test_calibration_images_leave_hidden_files_out(tmp_path: Path) -> None:
    from torchbricks._deploy_quantize import _folder_images

    (tmp_path / "images").mkdir()
    Image.new("RGB", (10, 10), (200, 0, 0)).save(tmp_path / "images" / "a.png")
    (tmp_path / "images" / "._a.png").write_bytes(b"\x00\x05\x16\x07 not an image")  # macOS's twin on a shared drive

    assert len(_folder_images(tmp_path / "images", (8, 8))) == 1


def test_the_agreement_does_not_pair_points_by_position_as_they_are_sorted_by_score() -> None:
    from torchbricks._deploy_quantize import _agreement

    points = np.array([[[4.0, 4.0], [20.0, 8.0]]], dtype=np.float32)
    labels = np.array([[0, 1]])
    swapped = {"spots/points": points[:, ::-1], "spots/labels": labels[:, ::-1], "count/count": np.array([2.0], np.float32)}
    reference = {"spots/points": points, "spots/labels": labels, "count/count": np.array([2.5], np.float32)}

    agreement = _agreement([(reference, swapped)])

    assert "spots/points:max_abs_difference" not in agreement  # 16 px by position, though the same two points
    assert agreement["spots/labels:same_box_count"] == 1.0
    assert agreement["count/count:max_abs_difference"] == 0.5


def test_calibration_reads_each_frame_of_an_animation_as_predict_does(tmp_path: Path) -> None:
    # read_image refuses an animation (it reads one picture): calibrating on a folder holding an animated WebP
    # (a phone's motion photo, a sticker) stopped there with a DataError
    from torchbricks._deploy_quantize import _folder_images

    (tmp_path / "images").mkdir()
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((200, 0, 0), (0, 200, 0), (0, 0, 200))]
    frames[0].save(tmp_path / "images" / "blink.webp", save_all=True, append_images=frames[1:], lossless=True)

    calibration = _folder_images(tmp_path / "images", (8, 8))

    assert [image[:, 0, 0].tolist() for image in calibration] == [[200, 0, 0], [0, 200, 0], [0, 0, 200]]


def test_calibration_decodes_only_the_images_it_calibrates_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a folder of 5,000 phone photographs was decoded whole (about 0.2 s each) to calibrate on its first 32
    from torchbricks import _deploy_quantize

    (tmp_path / "images").mkdir()
    for index in range(5):
        Image.new("RGB", (10, 10), (40 * index, 0, 0)).save(tmp_path / "images" / f"{index}.png")
    read = _deploy_quantize.read_frames
    decoded: list[str] = []
    monkeypatch.setattr(_deploy_quantize, "read_frames", lambda path, size: decoded.append(Path(path).name) or read(path, size))

    calibration = _deploy_quantize._folder_images(tmp_path / "images", (8, 8), limit=2)

    assert decoded == ["0.png", "1.png"]
    assert [image[0, 0, 0] for image in calibration] == [0, 40]


def test_calibration_opens_each_image_file_once_and_decodes_it_as_predict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each WebP was opened twice: once to count its frames, once (or once a frame) to decode it (GIFs are no training
    # images: calibration does not read them)
    from helpers import count_reads

    from torchbricks._deploy_quantize import _folder_images
    from torchbricks.deploy import read_model_image, resize_image

    folder = tmp_path / "images"
    folder.mkdir()
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((200, 0, 0), (0, 200, 0), (0, 0, 200))]
    frames[0].save(folder / "a_blink.webp", save_all=True, append_images=frames[1:], lossless=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / "c_still.webp", lossless=True)
    Image.linear_gradient("L").convert("RGB").resize((64, 48)).save(folder / "e_photo.jpg")  # decoded reduced for 8 x 8
    opened, _ = count_reads(monkeypatch)

    calibration = _folder_images(folder, (8, 8))

    assert {Path(path).name: count for path, count in opened.items()} == dict.fromkeys(
        ("a_blink.webp", "c_still.webp", "e_photo.jpg"), 1
    )
    monkeypatch.undo()
    assert [image[:, 0, 0].tolist() for image in calibration[:4]] == [[200, 0, 0], [0, 200, 0], [0, 0, 200], [10, 20, 30]]
    photo = resize_image(read_model_image(folder / "e_photo.jpg", (8, 8))[0], (8, 8)).transpose(2, 0, 1)
    np.testing.assert_array_equal(calibration[4], photo)
