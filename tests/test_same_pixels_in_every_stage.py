"""A model is given the same pixels in every stage: the training data module, its test split (the job's
metrics.json), `evaluate`, `predict` (bricks and `--onnx`) and `torchbricks.deploy` decode a large JPEG alike
(`torchbricks._pictures.rgb_for_input`), and read the frames of an animation alike."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import channel_means_onnx_file
from PIL import Image
from torch import nn

from torchbricks._image_sources import ImageSource, ImageSourceDataset, collect_image_sources
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickNotTrainable
from torchbricks.datasets._reading import load_rgb
from torchbricks.deploy import OnnxPredictor, read_frames, read_image, read_model_image
from torchbricks.errors import BrickError, DataError
from torchbricks.lightning.image_datamodules import ImageFolderDataModule
from torchbricks.predict import BrickBackend, predict_images
from torchbricks.trained_experiment import TrainedExperiment

SIZE = (96, 128)
"""(height, width) of the model's input: a 1024 x 768 JPEG is decoded at 1/8 (128 x 96) for it."""
SHOWN = (768, 1024)
ORIENTATIONS = (1, 3, 6, 8)


def _photo(path: Path, orientation: int, seed: int) -> Path:
    """A photograph-like JPEG shown 1024 x 768 (smooth ramps, fine noise, a sharp edge), stored turned as EXIF
    `orientation` says, at quality 90."""
    rng = np.random.default_rng(seed)
    height, width = SHOWN
    ramp = np.linspace(0, 180, width)[None, :, None] + np.linspace(0, 60, height)[:, None, None]
    pixels = ramp + rng.normal(0, 8, (height, width, 3)) + np.array([0, 20, 40])
    pixels[height // 3 : height // 2, width // 4 : width // 2] += 60
    shown = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    undo = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    stored = shown if undo[orientation] is None else shown.transpose(undo[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    stored.save(path, "JPEG", quality=90, exif=exif.tobytes())
    return path


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """An image folder whose training, validation and test splits hold the same JPEG files (`cat/o<orientation>.jpg`)."""
    root = tmp_path / "data"
    for orientation in ORIENTATIONS:
        _photo(root / "train" / "cat" / f"o{orientation}.jpg", orientation, seed=orientation)
    _photo(root / "train" / "dog" / "o1.jpg", 1, seed=99)
    for split in ("val", "test"):
        shutil.copytree(root / "train", root / split)
    return root


def _as_bytes(raw: torch.Tensor) -> np.ndarray:
    """A float image [3, H, W] in [0, 1] (k / 255) back as the uint8 [H, W, 3] it was made from: exact, as both
    training's ToDtype and the backend's division are within a float32 rounding of k / 255."""
    return (raw * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _given(dataset: Any) -> dict[str, np.ndarray]:
    """What a split's dataset gives the model for each file: `class/file name` -> uint8 [H, W, 3]."""
    return {
        f"{path.parent.name}/{path.name}": _as_bytes(dataset[index]["raw"]) for index, (path, _) in enumerate(dataset.samples)
    }


def _trained(photos: Path) -> dict[str, np.ndarray]:
    data = ImageFolderDataModule(photos, image_size=list(SIZE), batch_size=2)
    data.setup("fit")
    trained = _given(data.datasets["train"])
    assert len(trained) == len(ORIENTATIONS) + 1
    assert all(image.shape == (*SIZE, 3) for image in trained.values())
    return trained


def _decoded_whole(path: Path) -> np.ndarray:
    """The file decoded whole and then resized to the input size: what predict gave the model before."""
    from torchvision.transforms.v2 import functional

    whole = torch.from_numpy(np.array(load_rgb(path))).permute(2, 0, 1)
    return functional.resize(whole, list(SIZE), antialias=True).permute(1, 2, 0).numpy()


def test_the_photographs_decoded_whole_differ_from_what_training_gave_the_model(photos: Path) -> None:
    # the premise of the tests below: decoded whole, a large JPEG gives the model other pixels than training did
    trained = _trained(photos)
    for name, image in trained.items():
        difference = np.abs(_decoded_whole(photos / "train" / name).astype(int) - image)
        assert difference.mean() > 0.05, name


def test_the_test_split_and_evaluate_give_the_model_the_pixels_training_gave_it(photos: Path) -> None:
    trained = _trained(photos)
    data = ImageFolderDataModule(photos, image_size=list(SIZE), batch_size=2)
    data.setup("test")  # as the job's test (metrics.json) and `evaluate split=test` read it
    tested = _given(data.datasets["test"])
    data.read_for_evaluation()  # as `evaluate split=all` reads every split
    evaluated = [_given(dataset) for dataset in data.all_dataloader().dataset.datasets]

    assert tested.keys() == trained.keys()
    for name, image in trained.items():
        np.testing.assert_array_equal(tested[name], image, err_msg=name)
        for split in evaluated:
            np.testing.assert_array_equal(split[name], image, err_msg=name)


class _Recorder(nn.Module):
    """A segmentation head that records the images it is given (as uint8) and finds nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.given: list[np.ndarray] = []

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.given.extend(_as_bytes(image) for image in raw)
        probabilities = torch.zeros((raw.shape[0], 2, *raw.shape[2:]))
        probabilities[:, 0] = 1.0
        return probabilities, probabilities.argmax(dim=1)


def _recording_experiment(folder: Path) -> tuple[TrainedExperiment, _Recorder]:
    recorder = _Recorder()
    brick = BrickNotTrainable(recorder, input_names=["raw"], output_names=["./probabilities", "./mask"])
    description = {"image_size": list(SIZE), "class_names": ["background", "thing"]}
    return TrainedExperiment(folder, None, description, BrickCollection({"seg": {"segment": brick}}).eval()), recorder


def test_predict_gives_the_model_the_pixels_training_gave_it_and_writes_at_the_whole_size(photos: Path, tmp_path: Path) -> None:
    trained = _trained(photos)
    experiment, recorder = _recording_experiment(tmp_path / "experiment")
    backend = BrickBackend(experiment)
    recorder.given.clear()  # the backend's check with a black image at construction
    sources = collect_image_sources([photos / "train"])

    predict_images(backend, [photos / "train"], tmp_path / "out", workers=0, progress=False)

    names = [f"{source.path.parent.name}/{source.path.name}" for source in sources]
    assert len(recorder.given) == len(names)
    for name, image in zip(names, recorder.given, strict=True):
        np.testing.assert_array_equal(image, trained[name], err_msg=name)
    for name in names:  # the mask and the drawn picture at the photograph's whole size as shown
        stem = name.removesuffix(".jpg")
        assert Image.open(tmp_path / "out" / "masks" / f"{stem}.png").size == SHOWN[::-1], name
        assert Image.open(tmp_path / "out" / "drawn" / f"{stem}.jpg").size == SHOWN[::-1], name


def test_the_onnx_predictor_and_predict_onnx_give_the_model_the_pixels_training_gave_it(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchbricks._commands.predict import _OnnxBackend

    pytest.importorskip("onnxruntime")
    trained = _trained(photos)
    predictor = OnnxPredictor(channel_means_onnx_file(tmp_path, SIZE))
    given: list[np.ndarray] = []
    run = predictor.run
    monkeypatch.setattr(
        predictor, "run", lambda images, names=None: given.extend(images.transpose(0, 2, 3, 1)) or run(images, names)
    )
    names = sorted(trained)
    paths = [photos / "train" / name for name in names]

    predictor.predict(paths)  # files, read by the runtime
    by_runtime = list(given)
    given.clear()
    pixels, sizes = zip(*(read_model_image(path, predictor.image_size) for path in paths), strict=True)
    predictor.predict(list(pixels), sizes=list(sizes))  # arrays read by read_model_image
    by_arrays = list(given)
    given.clear()
    predict_images(_OnnxBackend(predictor, 32, None, None), [photos / "train"], tmp_path / "out", workers=0, progress=False)

    assert sizes == (SHOWN,) * len(names)
    for index, name in enumerate(names):
        for image in (by_runtime[index], by_arrays[index], given[index]):
            np.testing.assert_array_equal(image, trained[name], err_msg=name)


def test_tiles_are_cut_from_the_whole_picture_as_training_cuts_them(photos: Path, tmp_path: Path) -> None:
    # training's tiles (`TiledDataset`) are cut from the whole decoded image (`load_rgb`): predict --tile reads so too
    experiment, _ = _recording_experiment(tmp_path / "experiment")
    path = photos / "train" / "cat" / "o6.jpg"
    backend = BrickBackend(experiment, tile=256)

    _, read, _ = ImageSourceDataset([ImageSource(path)]).read(0, backend.decoding_size)

    assert backend.decoding_size is None
    assert read is not None
    np.testing.assert_array_equal(read.pixels, np.array(load_rgb(path)))
    np.testing.assert_array_equal(read_model_image(path, None)[0], read.pixels)


def _animation(path: Path, frames: int) -> Path:
    pictures = [Image.new("RGB", (8, 6), (40 * index, 255 - 40 * index, 90)) for index in range(frames)]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100)
    return path


def test_read_image_refuses_an_animation_naming_its_frames_and_read_frames_reads_them_as_predict(tmp_path: Path) -> None:
    path = _animation(tmp_path / "blink.gif", frames=3)

    with pytest.raises(DataError, match=r"Image '.*blink\.gif' is an animation of 3 frames; .*deploy\.read_frames"):
        read_image(path)
    frames = read_frames(path)
    sources = collect_image_sources([path])

    assert [source.frame for source in sources] == [0, 1, 2]  # predict: one image per frame
    assert len(frames) == 3
    for index, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, ImageSourceDataset(sources)[index][1])
        assert frame[0, 0].tolist() == [40 * index, 255 - 40 * index, 90]


def test_a_multi_page_tiff_is_its_first_page_for_read_image_and_predict(tmp_path: Path) -> None:
    # a TIFF's further pages are mostly its overviews or a thumbnail (a GeoTIFF's, a scanner's): its first page is it
    path = tmp_path / "scan.tif"
    pages = [Image.new("RGB", (8, 6), (200, 10, 10)), Image.new("RGB", (4, 3), (10, 200, 10))]
    pages[0].save(path, save_all=True, append_images=pages[1:])

    (source,) = collect_image_sources([path])

    assert source.frame is None
    np.testing.assert_array_equal(read_image(path), ImageSourceDataset([source])[0][1])
    assert read_image(path).shape == (6, 8, 3)
    assert [frame.shape for frame in read_frames(path)] == [(6, 8, 3)]


def test_sizes_of_reduced_images_are_refused_with_tiles_and_when_not_one_per_image(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    predictor = OnnxPredictor(channel_means_onnx_file(tmp_path, SIZE))
    backend = BrickBackend(_recording_experiment(tmp_path / "experiment")[0], tile=64)
    reduced = np.zeros((96, 128, 3), np.uint8)

    with pytest.raises(BrickError, match=r"OnnxPredictor\.predict: tiles are cut from the whole image .* \[\(768, 1024\)\]"):
        predictor.predict([reduced], tile=64, sizes=[SHOWN])
    with pytest.raises(BrickError, match=r"BrickBackend\.predict: tiles are cut from the whole image"):
        backend.predict([reduced], sizes=[SHOWN])
    with pytest.raises(BrickError, match=r"OnnxPredictor\.predict: 2 sizes for 1 images"):
        predictor.predict([reduced], sizes=[SHOWN, SHOWN])


def test_sizes_whose_sides_do_not_fit_the_reduced_image_are_refused_naming_the_swap(tmp_path: Path) -> None:
    # (width, height), as Pillow gives sizes, would silently stretch a 768 x 1024 photograph's boxes to 1024 x 768
    pytest.importorskip("onnxruntime")
    predictor = OnnxPredictor(channel_means_onnx_file(tmp_path, SIZE))
    backend = BrickBackend(_recording_experiment(tmp_path / "experiment")[0])
    reduced = np.zeros((96, 128, 3), np.uint8)  # 768 x 1024 decoded at 1/8
    swapped = SHOWN[::-1]

    for predict, caller in ((predictor.predict, "OnnxPredictor"), (backend.predict, "BrickBackend")):
        with pytest.raises(
            BrickError,
            match=rf"{caller}\.predict: image 0 of \[96, 128\] pixels cannot have been decoded "
            rf"reduced from size \(1024, 768\).*\(height, width\).*Did you mean \(768, 1024\)\?",
        ):
            predict([reduced], sizes=[swapped])
        with pytest.raises(BrickError, match=rf"{caller}\.predict: image 0 of \[96, 128\] pixels .* from size \(48, 64\)"):
            predict([reduced], sizes=[(48, 64)])  # smaller than the image: not what it was decoded from


def test_a_backend_subclass_whose_predict_takes_no_sizes_is_given_whole_images_and_told_so(photos: Path, tmp_path: Path) -> None:
    # a subclass written before `sizes` (post-processing super().predict(images)) inherits decoding_size; called with
    # sizes it stopped predict with "unexpected keyword argument 'sizes'" from a reader thread
    class Renamed(BrickBackend):
        def predict(self, images: Any) -> list[Any]:  # type: ignore[override]
            return super().predict(images)

    experiment, recorder = _recording_experiment(tmp_path / "experiment")
    backend = Renamed(experiment)
    recorder.given.clear()
    path = photos / "train" / "cat" / "o6.jpg"

    with pytest.warns(
        UserWarning, match=r"Renamed\.predict takes no 'sizes'.*decoded whole.*predict\(self, images, sizes=None\)"
    ):
        predict_images(backend, [path], tmp_path / "out", workers=0, progress=False)

    (given,) = recorder.given
    np.testing.assert_array_equal(given, _decoded_whole(path))  # as before the change: results at the whole size
    assert Image.open(tmp_path / "out" / "masks" / "o6.png").size == SHOWN[::-1]
