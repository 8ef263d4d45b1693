"""The torch-free runtime `torchbricks.deploy` on a hand-made ONNX file; exported experiments are in test_deploy_export.py."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import channel_means_onnx_file

from torchbricks.deploy import METADATA_FORMAT, OnnxPredictor, metadata_path, read_image, resize_image, resize_mask
from torchbricks.errors import BrickError

SRC = Path(__file__).parent.parent / "src"


def test_predict_resizes_each_image_to_the_model_and_returns_its_results_per_head(tmp_path: Path) -> None:
    predictor = OnnxPredictor(channel_means_onnx_file(tmp_path, (4, 6)))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((4, 6, 3), (9, 7, 3), (30, 40, 3))]

    results = predictor.predict(images, batch_size=2)

    assert [sorted(result) for result in results] == [["head"]] * 3
    for image, result in zip(images, results, strict=True):
        assert result["head"]["kind"] == "classification"
        expected = resize_image(image, (4, 6)).reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(result["head"]["probabilities"], expected, rtol=1e-6)
        assert result["head"]["probabilities"].dtype == np.float32


def test_predict_with_tiles_averages_the_classification_of_each_padded_and_resized_window(tmp_path: Path) -> None:
    predictor = OnnxPredictor(channel_means_onnx_file(tmp_path, (4, 6)))
    image = np.random.default_rng(0).integers(0, 256, (5, 12, 3), dtype=np.uint8)

    (result,) = predictor.predict([image], batch_size=1, tile=6, overlap=0.0)

    windows = []  # x at 0 and 6; the 5 rows padded with a black row to the tile of 6, then resized to the model's 4 x 6
    for x_min in (0, 6):
        padded = np.zeros((6, 6, 3), dtype=np.uint8)
        padded[:5] = image[:, x_min : x_min + 6]
        windows.append(resize_image(padded, (4, 6)).reshape(-1, 3).mean(axis=0))
    np.testing.assert_allclose(result["head"]["probabilities"], np.mean(windows, axis=0), rtol=1e-6)


def test_tiles_are_refused_by_a_segmentation_file_without_class_probabilities_saying_to_export_again(tmp_path: Path) -> None:
    path = channel_means_onnx_file(tmp_path, (4, 6))
    metadata = json.loads(metadata_path(path).read_text())
    metadata["heads"] = {"seg": {"kind": "segmentation", "class_names": None}}  # the file has no seg/probabilities
    metadata_path(path).write_text(json.dumps(metadata))
    predictor = OnnxPredictor(path)

    with pytest.raises(BrickError, match=r"no output 'seg/probabilities', which merging the tiles .* `torchbricks export`"):
        predictor.predict([np.zeros((8, 8, 3), np.uint8)], tile=4)


def test_an_overlap_without_a_tile_is_refused_naming_both(tmp_path: Path) -> None:
    predictor = OnnxPredictor(channel_means_onnx_file(tmp_path, (4, 6)))

    with pytest.raises(BrickError, match=r"OnnxPredictor\.predict: overlap=0\.5 needs tile=N .* would be ignored"):
        predictor.predict([np.zeros((8, 8, 3), np.uint8)], overlap=0.5)


def test_predict_refuses_an_image_that_is_not_uint8_rgb_naming_it(tmp_path: Path) -> None:
    predictor = OnnxPredictor(channel_means_onnx_file(tmp_path, (4, 6)))

    with pytest.raises(BrickError, match=r"image 1 must be a uint8 RGB array \[H, W, 3\], got a float32 array \(4, 6, 3\)"):
        predictor.predict([np.zeros((4, 6, 3), np.uint8), np.zeros((4, 6, 3), np.float32)])


def test_predict_given_one_image_instead_of_a_list_says_to_pass_a_list(tmp_path: Path) -> None:
    # predict("photo.jpg") read each letter as a file name ("Image 'p' does not exist."), and one array [H, W, 3] as H
    # images of one row each ("image 0 must be ... got a uint8 array (6, 3)"), naming neither mistake.
    predictor = OnnxPredictor(channel_means_onnx_file(tmp_path, (4, 6)))
    image = np.zeros((4, 6, 3), np.uint8)

    with pytest.raises(BrickError, match=r"takes a list of images, got one file name 'photo\.jpg': predict\(\['photo\.jpg'\]\)"):
        predictor.predict("photo.jpg")  # type: ignore[arg-type]
    with pytest.raises(BrickError, match=r"got one uint8 array \(4, 6, 3\): predict\(\[image\]\)"):
        predictor.predict(image)  # type: ignore[arg-type]
    assert len(predictor.predict(np.stack([image, image]))) == 2  # a batch [B, H, W, 3] is a list of images


def test_predict_refuses_an_empty_image_naming_it(tmp_path: Path) -> None:
    # numpy's maximum of nothing raised a ValueError that named no image
    predictor = OnnxPredictor(channel_means_onnx_file(tmp_path, (4, 6)))

    with pytest.raises(BrickError, match=r"OnnxPredictor\.predict: image 1 is empty, an array \(0, 6, 3\)"):
        predictor.predict([np.zeros((4, 6, 3), np.uint8), np.zeros((0, 6, 3), np.uint8)])


def test_a_file_without_its_metadata_or_with_another_format_is_refused(tmp_path: Path) -> None:
    path = channel_means_onnx_file(tmp_path, (4, 6))
    metadata_path(path).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(BrickError, match="has format 'something else'; expected 'torchbricks-deployable-onnx/1'"):
        OnnxPredictor(path)

    metadata_path(path).write_text('{"format": "torchbricks-deployable-onnx/1", "image_si')  # a copy cut short
    with pytest.raises(BrickError, match=r"means\.onnx\.json' is not the JSON `torchbricks export` writes \(JSONDecodeError"):
        OnnxPredictor(path)

    metadata_path(path).unlink()
    with pytest.raises(
        BrickError, match=r"holds no metadata \('torchbricks'\) and \[.*means.onnx.json'\] is missing \(written by"
    ):
        OnnxPredictor(path)


def test_a_file_holding_its_metadata_is_read_by_it_and_one_without_by_the_json_beside_it(tmp_path: Path) -> None:
    # The metadata was read from the copy beside the file only: an export killed between its two renames left a model
    # beside another export's metadata, or beside none
    import onnx

    path = channel_means_onnx_file(tmp_path, (4, 6))  # as exported before 2026-12-07: its metadata beside it only
    assert OnnxPredictor(path).image_size == (4, 6)

    model = onnx.load(str(path))
    own = {**json.loads(metadata_path(path).read_text()), "image_size": [8, 6]}
    model.metadata_props.add(key="torchbricks", value=json.dumps(own))
    onnx.save(model, str(path))
    metadata_path(path).write_text(json.dumps({"format": "another export's, left beside it"}))
    assert OnnxPredictor(path).image_size == (8, 6)
    metadata_path(path).unlink()
    assert OnnxPredictor(path).image_size == (8, 6)


def test_a_model_file_cut_short_is_refused_in_one_library_error_naming_it(tmp_path: Path) -> None:
    # onnxruntime's InvalidProtobuf reached the user, a class of its own and no word of what to do
    path = channel_means_onnx_file(tmp_path, (4, 6))
    path.write_bytes(path.read_bytes()[:-20])

    with pytest.raises(BrickError, match=r"means\.onnx': the file is cut short .* \(InvalidProtobuf\)\. Export the model again"):
        OnnxPredictor(path)


def _torchvision_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from torchvision.transforms import v2

    return v2.Resize(size, antialias=True)(torch.from_numpy(image).permute(2, 0, 1)).permute(1, 2, 0).numpy()


_NATIVE_UINT8_RESIZE = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
"""torchvision resizes uint8 images natively (in fixed point) on x86 CPUs with AVX2; elsewhere through float32."""

_RESIZES = [
    ((64, 64, 3), (48, 48)),
    ((64, 64, 3), (96, 80)),
    ((300, 200, 3), (64, 64)),
    ((40, 900, 3), (64, 64)),  # a strip: shrunk 14 times across, enlarged down
    ((900, 40, 3), (32, 32)),  # the same standing: Pillow resizes it rows first, torchvision columns first
    ((7, 11, 3), (64, 64)),  # smaller than the model
    ((3024, 40, 3), (192, 192)),  # a phone photograph's height to a model's
    ((3000, 8, 3), (8, 8)),  # shrunk 375 times: weights so small that their precision is capped (22 bits)
    ((1, 1, 3), (5, 3)),
]


@pytest.mark.parametrize(("shape", "size"), _RESIZES)
def test_resize_image_gives_torchvisions_antialiased_resize_of_training(shape: tuple[int, ...], size: tuple[int, int]) -> None:
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    expected = _torchvision_resize(image, size)

    resized = resize_image(image, size)

    assert resized.dtype == np.uint8
    if _NATIVE_UINT8_RESIZE:
        np.testing.assert_array_equal(resized, expected)
    else:  # torchvision through float32, rounded once: within a grey level
        assert np.abs(resized.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.skipif(not _NATIVE_UINT8_RESIZE, reason="torchvision resizes uint8 natively on x86 CPUs with AVX2 only")
def test_resize_image_gives_torchvisions_pixels_on_random_sizes() -> None:
    rng = np.random.default_rng(2)
    for _ in range(100):
        shape = (*(int(side) for side in rng.integers(1, 400, 2)), 3)
        size = (int(rng.integers(1, 200)), int(rng.integers(1, 200)))
        image = rng.integers(0, 256, shape, dtype=np.uint8)

        np.testing.assert_array_equal(resize_image(image, size), _torchvision_resize(image, size), err_msg=f"{shape} -> {size}")


@pytest.mark.parametrize("size", [(80, 100), (128, 128), (50, 37), (16, 16)])
def test_resize_mask_takes_the_pixel_under_each_centre_like_torch_nearest_exact(size: tuple[int, int]) -> None:
    mask = np.random.default_rng(2).integers(0, 5, (64, 64))
    expected = torch.nn.functional.interpolate(torch.from_numpy(mask).float()[None, None], size=size, mode="nearest-exact")

    np.testing.assert_array_equal(resize_mask(mask, size), expected[0, 0].long().numpy())


def test_read_image_turns_a_phone_photo_upright_and_names_a_bad_file(tmp_path: Path) -> None:
    from PIL import Image

    upright = np.zeros((20, 30, 3), dtype=np.uint8)
    upright[2:8, 3:12] = 255  # a block in the top-left corner as shown
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter anticlockwise; the tag says to turn it back
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "photo.png", exif=exif)
    (tmp_path / "notes.png").write_text("not an image")

    np.testing.assert_array_equal(read_image(tmp_path / "photo.png"), upright)
    with pytest.raises(BrickError, match=r"Image '.*missing\.jpg' does not exist"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(BrickError, match=r"Image '.*notes\.png' cannot be read"):
        read_image(tmp_path / "notes.png")


def test_the_runtime_imports_where_torch_cannot_be_imported() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import torchbricks.deploy\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('torch', 'torchvision', 'torchbricks')))"
    )
    process = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        timeout=60,
        check=False,
    )

    assert process.returncode == 0, process.stderr
    imported = set(ast.literal_eval(process.stdout))
    assert "torchbricks.deploy" in imported
    assert {name for name in imported if not name.startswith("torchbricks")} == {"torch"}  # the blocked entry only


def test_both_predict_paths_bring_a_mask_to_the_images_size_by_one_rule() -> None:
    import torchbricks._predict_backend as bricks_path
    from torchbricks import deploy

    # the ONNX path took the pixel under each centre, the bricks path torch's nearest: 4-12 % of a mask's pixels
    # differed for images not at the model's size
    assert bricks_path.resize_mask_nearest is deploy.resize_mask_nearest
    mask = np.arange(4 * 6).reshape(4, 6)
    assert not np.array_equal(deploy.resize_mask_nearest(mask, 2, 3), resize_mask(mask, (2, 3)))  # the rules differ


def _fixed_boxes_file(folder: Path, boxes: list[list[float]]) -> Path:
    """An ONNX detection file taking uint8 images [B, 3, 4, 6] and giving every image the same `boxes` (label 0)."""
    import onnx
    from onnx import TensorProto, helper

    count = len(boxes)
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["images"], ["floats"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["floats", "axes"], ["means"], keepdims=0),  # [B, 3]
            helper.make_node("Mul", ["means", "zero"], ["zeros"]),
            helper.make_node("Reshape", ["zeros", "row"], ["column"]),  # [B, 3, 1]
            helper.make_node("Slice", ["column", "start", "stop", "axis"], ["one"]),  # [B, 1, 1]
            helper.make_node("Add", ["one", "boxes"], ["det/boxes"]),  # [B, count, 4]
            helper.make_node("Squeeze", ["one", "last"], ["flat"]),  # [B, 1]
            helper.make_node("Add", ["flat", "scores"], ["det/scores"]),  # [B, count]
            helper.make_node("Cast", ["det/scores"], ["scores_as_int"], to=TensorProto.INT64),
            helper.make_node("Mul", ["scores_as_int", "zero_int"], ["det/labels"]),
        ],
        "fixed_boxes",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", 3, 4, 6])],
        [
            helper.make_tensor_value_info("det/boxes", TensorProto.FLOAT, ["batch", count, 4]),
            helper.make_tensor_value_info("det/scores", TensorProto.FLOAT, ["batch", count]),
            helper.make_tensor_value_info("det/labels", TensorProto.INT64, ["batch", count]),
        ],
        [
            helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3]),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("zero_int", TensorProto.INT64, [], [0]),
            helper.make_tensor("row", TensorProto.INT64, [3], [-1, 3, 1]),
            helper.make_tensor("start", TensorProto.INT64, [1], [0]),
            helper.make_tensor("stop", TensorProto.INT64, [1], [1]),
            helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
            helper.make_tensor("last", TensorProto.INT64, [1], [2]),
            helper.make_tensor("boxes", TensorProto.FLOAT, [1, count, 4], [value for box in boxes for value in box]),
            helper.make_tensor("scores", TensorProto.FLOAT, [1, count], [0.9] * count),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    path = folder / "boxes.onnx"
    onnx.save(model, str(path))
    metadata = {"format": METADATA_FORMAT, "image_size": [4, 6], "heads": {"det": {"kind": "detection", "class_names": None}}}
    metadata_path(path).write_text(json.dumps(metadata))
    return path


def test_predicted_boxes_are_cut_to_the_image_and_those_wholly_outside_it_dropped(tmp_path: Path) -> None:
    # the model's input is 6 x 4 (width x height); the image 60 x 20: x times 10, y times 5
    predictor = OnnxPredictor(_fixed_boxes_file(tmp_path, [[-1.0, 1.0, 2.0, 5.0], [6.5, 0.0, 8.0, 2.0]]))

    result = predictor.predict([np.zeros((20, 60, 3), dtype=np.uint8)])[0]["det"]

    np.testing.assert_allclose(result["boxes"], [[0.0, 5.0, 20.0, 20.0]])  # x from -10, y to 25: past the image
    assert result["scores"].tolist() == pytest.approx([0.9])
    assert result["labels"].tolist() == [0]


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_predict_refuses_a_batch_size_below_one_instead_of_predicting_no_image(tmp_path: Path, batch_size: float) -> None:
    predictor = OnnxPredictor(channel_means_onnx_file(tmp_path, (4, 6)))
    images = [np.zeros((4, 6, 3), dtype=np.uint8)] * 3

    with pytest.raises(BrickError, match=rf"batch_size must be an int of 1 or more .*got {batch_size}"):
        predictor.predict(images, batch_size=batch_size)  # type: ignore[arg-type]
    with pytest.raises(BrickError, match="batch_size must be an int of 1 or more"):
        predictor.predict(images, batch_size=batch_size, tile=4)  # type: ignore[arg-type]


def _softmax_segmentation_file(folder: Path, side: int) -> Path:
    """An ONNX file taking uint8 images [B, 3, side, side] and giving the softmax of their channels as the class
    probabilities of a segmentation head `seg` (3 classes), and their most probable class as its mask."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["images"], ["floats"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["floats", "scale"], ["scaled"]),
            helper.make_node("Softmax", ["scaled"], ["seg/probabilities"], axis=1),
            helper.make_node("ArgMax", ["seg/probabilities"], ["seg/mask"], axis=1, keepdims=0),
        ],
        "segment",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", 3, side, side])],
        [
            helper.make_tensor_value_info("seg/mask", TensorProto.INT64, ["batch", side, side]),
            helper.make_tensor_value_info("seg/probabilities", TensorProto.FLOAT, ["batch", 3, side, side]),
        ],
        [helper.make_tensor("scale", TensorProto.FLOAT, [], [1 / 64])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    path = folder / "segment.onnx"
    onnx.save(model, str(path))
    metadata = {"format": METADATA_FORMAT, "image_size": [side, side], "heads": {"seg": {"kind": "segmentation"}}}
    metadata_path(path).write_text(json.dumps(metadata))
    return path


def test_a_tiled_mask_is_merged_as_the_batches_come_back_holding_the_sums_not_every_windows_probabilities(
    tmp_path: Path,
) -> None:
    import tracemalloc

    from torchbricks._tiled_predictions import image_windows, merge_windows, tile_pixels

    # 640 x 640 px in tiles of 32 at overlap 0.5: 1521 windows, resized to the model's 64 px, whose probabilities (3
    # classes) are 71 MiB: kept until the last batch, they were the merge's peak. The sums are 4.7 MiB.
    predictor = OnnxPredictor(_softmax_segmentation_file(tmp_path, 64))
    image = np.random.default_rng(0).integers(0, 256, (640, 640, 3), dtype=np.uint8)
    run = predictor.run

    def traced_run(images: np.ndarray, output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        # onnxruntime's arrays live in its own memory, which tracemalloc does not see: copies in numpy's, which it does
        return {name: np.array(value) for name, value in run(images, output_names).items()}

    predictor.run = traced_run  # type: ignore[method-assign]
    tracemalloc.start()
    try:
        (result,) = predictor.predict([image], batch_size=32, tile=32, overlap=0.5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    windows = image_windows(640, 640, 32, 0.5)
    parts = []  # each window predicted alone and merged by merge_windows: the same mask
    for window in windows:
        pixels = resize_image(tile_pixels(image, window, 32), (64, 64)).transpose(2, 0, 1)[None]
        parts.append((window, {"seg/probabilities": run(pixels, ["seg/probabilities"])["seg/probabilities"][0]}))
    expected = merge_windows({"seg": "segmentation"}, parts, 640, 640, input_size=(64, 64), tile=32)["seg"]["mask"]
    assert len(windows) == 1521
    np.testing.assert_array_equal(result["seg"]["mask"], expected)
    assert peak < 40 * 2**20


def test_tiles_go_to_onnxruntime_in_batches_of_the_default_when_no_batch_size_is_given(tmp_path: Path) -> None:
    predictor = OnnxPredictor(channel_means_onnx_file(tmp_path, (4, 6)))
    image = np.random.default_rng(0).integers(0, 256, (6, 6 * 70, 3), dtype=np.uint8)  # 70 tiles of 6: 32 + 32 + 6
    batches: list[int] = []
    run = predictor.run

    def counted_run(images: np.ndarray, output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        batches.append(len(images))
        return run(images, output_names)

    predictor.run = counted_run  # type: ignore[method-assign]

    (result,) = predictor.predict([image], tile=6, overlap=0.0)

    assert batches == [32, 32, 6]  # DEFAULT_TILE_BATCH
    windows = [resize_image(image[:, x : x + 6], (4, 6)).reshape(-1, 3).mean(axis=0) for x in range(0, 420, 6)]
    np.testing.assert_allclose(result["head"]["probabilities"], np.mean(windows, axis=0), rtol=1e-5)


def test_read_image_gives_a_writable_array_as_predicts_reader_does(tmp_path: Path) -> None:
    from PIL import Image

    from torchbricks._image_sources import ImageSource, ImageSourceDataset

    Image.new("RGB", (6, 4), (10, 20, 30)).save(tmp_path / "photo.png")
    _, read_by_predict, _ = ImageSourceDataset([ImageSource(tmp_path / "photo.png")])[0]

    image = read_image(tmp_path / "photo.png")

    np.testing.assert_array_equal(image, read_by_predict)
    # read-only, as np.asarray makes a Pillow image, BrickBackend's torch.from_numpy warned that it was not writable
    assert image.flags.writeable == read_by_predict.flags.writeable is True


def test_predict_refuses_an_animation_naming_predict_and_how_to_predict_every_frame(tmp_path: Path) -> None:
    # It named read_image, a function the caller of predict had not called
    from PIL import Image

    from torchbricks.deploy import read_frames
    from torchbricks.errors import DataError

    path = tmp_path / "blink.gif"
    pictures = [Image.new("RGB", (6, 4), (40 * index, 0, 0)) for index in range(3)]
    pictures[0].save(path, save_all=True, append_images=pictures[1:])
    predictor = OnnxPredictor(channel_means_onnx_file(tmp_path, (4, 6)))

    with pytest.raises(DataError) as raised:
        predictor.predict([path])
    every_frame = predictor.predict(read_frames(path))  # what the message says to do

    assert str(raised.value) == (
        f"Image {str(path)!r} is an animation of 3 frames; OnnxPredictor.predict reads one picture of a file: predict "
        "every frame with predict(torchbricks.deploy.read_frames(path)), as `torchbricks predict` predicts each."
    )
    means = [result["head"]["probabilities"][0] for result in every_frame]
    np.testing.assert_allclose(means, [40 * index for index in range(3)], atol=1)


def test_read_model_image_opens_a_webp_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # It opened every .webp once more to count its frames
    from helpers import count_reads
    from PIL import Image

    from torchbricks.deploy import read_model_image

    path = tmp_path / "photo.webp"
    Image.new("RGB", (6, 4), (10, 20, 30)).save(path, lossless=True)
    opened, _ = count_reads(monkeypatch)

    pixels, size = read_model_image(path, None)

    assert opened[str(path)] == 1
    assert (pixels[0, 0].tolist(), size) == ([10, 20, 30], (4, 6))


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_read_frames_opens_an_animation_once_and_reads_each_frame_as_predict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    # It opened the file to count its frames, then once more for each frame
    from helpers import count_reads
    from PIL import Image

    from torchbricks._image_sources import ImageSourceDataset, collect_image_sources
    from torchbricks.deploy import read_frames

    path = tmp_path / f"blink{suffix}"
    frames = [Image.new("RGB", (6, 4), (50 * index, 200 - 50 * index, 90)) for index in range(4)]
    frames[0].save(
        path, save_all=True, append_images=frames[1:], duration=100, **({"lossless": True} if suffix == ".webp" else {})
    )
    opened, _ = count_reads(monkeypatch)

    read = read_frames(path)

    assert opened[str(path)] == 1
    monkeypatch.undo()
    sources = collect_image_sources([path])  # predict: each frame read in an opening of its own
    assert len(read) == len(sources) == 4
    for index, frame in enumerate(read):
        np.testing.assert_array_equal(frame, ImageSourceDataset(sources)[index][1])
        assert frame[0, 0].tolist() == [50 * index, 200 - 50 * index, 90]
