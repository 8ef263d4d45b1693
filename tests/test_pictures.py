from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from colour_profiles import icc_profile, to_srgb
from PIL import Image

from torchbricks._image_sources import ImageSource, ImageSourceDataset
from torchbricks._pictures import check_image_file, rgb_as_shown, upright_size
from torchbricks.datasets._reading import load_rgb
from torchbricks.deploy import read_image
from torchbricks.errors import ConfigError, DataError


def test_a_16_bit_image_keeps_its_upper_8_bits_everywhere_it_is_read(tmp_path: Path) -> None:
    values = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 109  # 0 to 65291
    Image.fromarray(values).save(tmp_path / "scan.png")
    expected = np.repeat((values >> 8).astype(np.uint8)[..., None], 3, axis=-1)
    with Image.open(tmp_path / "scan.png") as image:
        assert image.mode.startswith("I;16")  # what Pillow makes of a 16-bit PNG
        assert (np.asarray(image.convert("RGB")) == 255).mean() > 0.9  # Pillow's conversion: nearly all white

    assert np.array_equal(np.asarray(load_rgb(tmp_path / "scan.png")), expected)  # training and evaluation
    assert np.array_equal(read_image(tmp_path / "scan.png"), expected)  # torchbricks.deploy
    _, array, reason = ImageSourceDataset([ImageSource(tmp_path / "scan.png")])[0]  # predict
    assert reason == ""
    assert np.array_equal(array, expected)


def test_32_bit_integers_within_16_bits_read_as_16_bits() -> None:
    image = Image.fromarray(np.array([[0, 255, 256, 65535]], dtype=np.int32), mode="I")

    assert np.asarray(rgb_as_shown(image))[0, :, 1].tolist() == [0, 0, 1, 255]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (Image.fromarray(np.array([[0.0, 0.5]], dtype=np.float32), mode="F"), r"floating-point \(mode F\) image"),
        (Image.fromarray(np.array([[-1, 70000]], dtype=np.int32), mode="I"), r"I image with values -1 to 70000"),
    ],
)
def test_an_image_without_a_known_range_is_refused(image: Image.Image, message: str) -> None:
    with pytest.raises(DataError, match=message):
        rgb_as_shown(image)


def test_a_float_file_is_named_by_the_readers(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 6), dtype=np.float32), mode="F").save(tmp_path / "depth.tif")

    with pytest.raises(DataError, match=r"Image '.*depth\.tif': A floating-point"):
        load_rgb(tmp_path / "depth.tif")
    with pytest.raises(DataError, match=r"Image '.*depth\.tif': A floating-point"):
        read_image(tmp_path / "depth.tif")
    _, array, reason = ImageSourceDataset([ImageSource(tmp_path / "depth.tif")])[0]
    assert array is None
    assert reason.startswith("DataError: A floating-point")


def test_reading_the_size_of_a_png_does_not_decode_it(tmp_path: Path) -> None:
    Image.new("RGB", (64, 48)).save(tmp_path / "plain.png")  # no eXIf chunk: Pillow would decode it looking for one

    with Image.open(tmp_path / "plain.png") as image:
        assert upright_size(image) == (64, 48)
        assert image.tile  # still to be decoded: a data set's sizes are read from the headers alone


def test_an_image_beyond_pillows_pixel_limit_is_named_with_how_to_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchbricks.datasets._reading import image_file_size

    Image.new("RGB", (30, 20)).save(tmp_path / "ortho.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 600 pixels: more than twice the limit, refused

    for read in (load_rgb, read_image, image_file_size):
        with pytest.raises(DataError, match=r"'.*ortho\.png' is larger than Pillow reads .* TORCHBRICKS_MAX_IMAGE_PIXELS=0"):
            read(tmp_path / "ortho.png")
    _, image, reason = ImageSourceDataset([ImageSource(tmp_path / "ortho.png")])[0]
    assert image is None
    assert "TORCHBRICKS_MAX_IMAGE_PIXELS=0" in reason


@pytest.mark.parametrize(("value", "limit"), [("0", None), ("1000", 1000)])
def test_the_pixel_limit_variable_sets_pillows_limit(monkeypatch: pytest.MonkeyPatch, value: str, limit: int | None) -> None:
    from torchbricks import _pictures

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    monkeypatch.setenv(_pictures.PIXEL_LIMIT_VARIABLE, value)
    _pictures._apply_pixel_limit()
    assert limit == Image.MAX_IMAGE_PIXELS
    monkeypatch.setenv(_pictures.PIXEL_LIMIT_VARIABLE, "lots")
    with pytest.raises(ConfigError, match=r"TORCHBRICKS_MAX_IMAGE_PIXELS must be a number of pixels >= 0 .* got 'lots'"):
        _pictures._apply_pixel_limit()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_a_transparent_image_is_read_on_white_as_a_viewer_shows_it(tmp_path: Path, mode: str) -> None:
    pixels = np.zeros((4, 6, 4), dtype=np.uint8)  # black everywhere, transparent but for one opaque black pixel
    pixels[1, 2, 3] = 255
    image = Image.fromarray(pixels, "RGBA")
    if mode == "P":
        image = image.quantize(colors=4)
        image.info["transparency"] = int(np.asarray(image)[0, 0])  # the transparent palette index, as GIF and PNG keep it
    else:
        image = image.convert(mode)
    image.save(tmp_path / "icon.png", **({"transparency": image.info["transparency"]} if mode == "P" else {}))

    for read in (load_rgb, read_image):
        shown = np.asarray(read(tmp_path / "icon.png"))
        assert shown[1, 2].tolist() == [0, 0, 0]  # the opaque pixel
        assert (shown.reshape(-1, 3).sum(axis=1) == 3 * 255).sum() == 4 * 6 - 1  # the rest on white, not black


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_an_image_transparent_everywhere_is_read_by_its_colours_and_named_by_check_data(tmp_path: Path, mode: str) -> None:
    # A 4-channel array saved with its alpha channel left at 0 (a script's np.zeros, an export that drops the alpha):
    # read on white, as a viewer shows it, every such image was a blank white picture, in training and predict alike,
    # without a word. It is now read by its colours, as OpenCV, torchvision and Ultralytics read it.
    from torchbricks.datasets.checking import check_data

    colours = (np.random.default_rng(0).random((6, 8, 3)) * 255).astype(np.uint8)
    pixels = np.concatenate([colours, np.zeros((6, 8, 1), dtype=np.uint8)], axis=2)
    for split, name in (("train", "cat"), ("train", "dog"), ("val", "cat"), ("val", "dog")):
        (tmp_path / split / name).mkdir(parents=True)
        Image.new("RGB", (8, 6), (10, 20, 30) if name == "cat" else (200, 100, 0)).save(tmp_path / split / name / "a.png")
    path = tmp_path / "train" / "cat" / "export.png"
    Image.fromarray(pixels, "RGBA").convert(mode).save(path)
    expected = np.asarray(Image.open(path).convert("RGB"))  # the colours under the alpha (grey levels for LA)

    for read in (load_rgb, read_image, lambda file: ImageSourceDataset([ImageSource(file)])[0][1]):  # train, deploy, predict
        assert np.array_equal(np.asarray(read(path)), expected)
    (note,) = [note for note in check_data(tmp_path, task="classification").notes if "transparent everywhere" in note]
    assert note.startswith(f"1 image ({str(path)!r}) is transparent everywhere (alpha 0)")


def _photo_bytes(image_format: str) -> bytes:
    import io

    values = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    file = io.BytesIO()
    Image.fromarray(values).save(file, format=image_format)
    return file.getvalue()


@pytest.mark.parametrize(("image_format", "suffix"), [("JPEG", ".jpg"), ("PNG", ".png"), ("BMP", ".bmp"), ("PPM", ".ppm")])
def test_check_image_file_refuses_a_file_cut_short_that_opens_and_keeps_a_whole_one(
    tmp_path: Path, image_format: str, suffix: str
) -> None:
    # An interrupted copy or download leaves a file whose header opens: training stopped at it only when a loader
    # decoded it, for a test image after the whole training.
    from torchbricks._pictures import check_image_file

    whole, cut = tmp_path / f"whole{suffix}", tmp_path / f"cut{suffix}"
    whole.write_bytes(_photo_bytes(image_format))
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) * 2 // 3])
    with Image.open(cut) as image:
        assert image.size == (64, 48)  # the header reads
    with pytest.raises(DataError):
        load_rgb(cut)

    assert check_image_file(whole)[:2] == ((64, 48), 1)
    with pytest.raises(DataError, match=rf"Image '.*cut\{suffix}' cannot be read"):
        check_image_file(cut)


def test_check_image_file_keeps_a_photo_followed_by_its_video_and_refuses_what_is_no_image(tmp_path: Path) -> None:
    from torchbricks._pictures import check_image_file

    motion = tmp_path / "PXL_0001.MP.jpg"  # a phone's motion photo: the JPEG, then a video after its end marker
    motion.write_bytes(_photo_bytes("JPEG") + b"\x00\x00\x00\x18ftypmp42" + bytes(4000))
    (tmp_path / "page.jpg").write_text("<html><body>Not Found</body></html>")  # what a failed download saves
    (tmp_path / "empty.png").write_bytes(b"")
    Image.fromarray(np.zeros((4, 4), dtype=np.float32), mode="F").save(tmp_path / "depth.tif")

    assert check_image_file(motion)[:2] == ((64, 48), 1)
    assert np.asarray(load_rgb(motion)).shape == (48, 64, 3)
    for name, reason in [("page.jpg", "cannot be read"), ("empty.png", "cannot be read"), ("depth.tif", "floating-point")]:
        with pytest.raises(DataError, match=rf"Image '.*{re.escape(name)}'.*{reason}"):
            check_image_file(tmp_path / name)


# --- colour profiles ---------------------------------------------------------------------------------------------


def _readers() -> list[Any]:
    """Every way torchbricks reads an image file: training and evaluation, the decoded-image cache at the image's own
    size, a reduced JPEG decode asked for the whole size, torchbricks.deploy and predict."""
    from torchbricks._pictures import read_rgb_for_input
    from torchbricks.datasets.image_cache import ResizedImageCache

    def cached(path: Path) -> np.ndarray:
        width, height = Image.open(path).size
        return ResizedImageCache((height, width), megabytes=0).image(path)[0].permute(1, 2, 0).numpy()

    return [
        load_rgb,
        cached,
        lambda path: read_rgb_for_input(path, Image.open(path).size[::-1])[0],
        read_image,
        lambda path: ImageSourceDataset([ImageSource(path)])[0][1],
    ]


@pytest.mark.parametrize("space", ["display-p3", "adobe-rgb"])
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_an_image_with_a_wide_gamut_profile_is_read_converted_to_srgb_by_every_reader(
    tmp_path: Path, space: str, suffix: str
) -> None:
    # A Display P3 photograph (iPhones embed the profile) or an Adobe RGB one was read by its stored numbers as if
    # sRGB: its colours duller than any viewer shows them, and other than a model deployed behind a browser sees.
    values = (np.random.default_rng(1).random((48, 64, 3)) * 255).astype(np.uint8)
    values[0, :4] = [(255, 0, 0), (0, 255, 0), (128, 128, 128), (255, 255, 255)]
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(values).save(path, icc_profile=icc_profile(space), **({"quality": 95} if suffix == ".jpg" else {}))
    stored = np.asarray(Image.open(path).convert("RGB"))  # Pillow alone: the numbers as stored
    expected = to_srgb(stored, space)  # the textbook conversion, numpy only
    assert np.abs(expected.astype(int) - stored).max() > 40  # the profile matters

    for read in _readers():
        shown = np.asarray(read(path)).astype(int)
        assert shown.shape == expected.shape
        assert np.abs(shown - expected).max() <= 1  # LittleCMS's 8-bit rounding
    description = {"display-p3": "Display P3", "adobe-rgb": "Adobe RGB (1998)"}[space]
    assert check_image_file(path) == ((64, 48), 1, False, description)


def test_images_without_a_profile_or_with_an_srgb_one_are_read_as_stored(tmp_path: Path) -> None:
    from PIL import ImageCms

    values = (np.random.default_rng(2).random((24, 32, 3)) * 255).astype(np.uint8)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(values).save(tmp_path / "plain.png")
    Image.fromarray(values).save(tmp_path / "srgb.png", icc_profile=srgb)
    for name in ("plain.png", "srgb.png"):
        for read in _readers():
            assert np.array_equal(np.asarray(read(tmp_path / name)), values)
        assert check_image_file(tmp_path / name) == ((32, 24), 1, False, None)


def test_check_image_file_tells_an_image_transparent_everywhere_from_one_partly_transparent(tmp_path: Path) -> None:
    pixels = np.full((6, 8, 4), 90, dtype=np.uint8)
    pixels[..., 3] = 0
    Image.fromarray(pixels, "RGBA").save(tmp_path / "empty_alpha.png")
    pixels[2, 3, 3] = 1
    Image.fromarray(pixels, "RGBA").save(tmp_path / "icon.png")

    assert check_image_file(tmp_path / "empty_alpha.png").transparent
    assert not check_image_file(tmp_path / "icon.png").transparent


def test_without_littlecms_a_profiled_image_is_read_as_stored_and_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    import PIL

    from torchbricks import _pictures

    values = (np.random.default_rng(3).random((8, 8, 3)) * 255).astype(np.uint8)
    Image.fromarray(values).save(tmp_path / "p3.png", icc_profile=icc_profile("display-p3"))
    _pictures.srgb_profile_conversion.cache_clear()
    monkeypatch.setitem(sys.modules, "PIL.ImageCms", None)  # a Pillow built without LittleCMS
    monkeypatch.delattr(PIL, "ImageCms", raising=False)  # else `from PIL import ImageCms` finds it imported
    monkeypatch.setattr(_pictures._ImageCmsMissing, "noted", False)
    try:
        for _ in range(2):
            assert np.array_equal(np.asarray(load_rgb(tmp_path / "p3.png")), values)
    finally:
        _pictures.srgb_profile_conversion.cache_clear()
    error = capsys.readouterr().err
    assert error.count("torchbricks: note: this Pillow has no ImageCms (LittleCMS)") == 1


def test_a_jpeg_carrying_more_pictures_is_decoded_reduced_as_a_plain_jpeg(tmp_path: Path) -> None:
    # Pillow opens a JPEG followed by further pictures (an Ultra HDR photograph's gain map) as MPO: such photographs
    # were decoded whole for every training read, five times slower than a plain JPEG of their size.
    from torchbricks._pictures import read_rgb_reduced

    values = (np.random.default_rng(4).random((1200, 1600, 3)) * 255).astype(np.uint8)
    Image.fromarray(values).save(tmp_path / "plain.jpg")
    Image.fromarray(values).save(tmp_path / "hdr.jpg", format="MPO", save_all=True, append_images=[Image.new("RGB", (400, 300))])
    with Image.open(tmp_path / "hdr.jpg") as image:
        assert image.format == "MPO"

    plain, plain_shown = read_rgb_reduced(tmp_path / "plain.jpg", (200, 150))
    photo, shown = read_rgb_reduced(tmp_path / "hdr.jpg", (200, 150))

    assert photo.size == plain.size == (200, 150)
    assert shown == plain_shown == (1600, 1200)
    assert np.array_equal(np.asarray(photo), np.asarray(plain))


def test_a_file_that_is_no_image_is_named_by_its_path_everywhere_it_is_read(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("no JPEG at all")
    expected = f"cannot identify image file {str(tmp_path / 'notes.jpg')!r}"  # Pillow's words for a path it cannot read

    with pytest.raises(DataError, match=re.escape(expected)) as raised:
        read_image(tmp_path / "notes.jpg")  # torchbricks.deploy
    assert "BufferedReader" not in str(raised.value)
    _, array, reason = ImageSourceDataset([ImageSource(tmp_path / "notes.jpg")])[0]  # predict: skipped.txt's reason
    assert array is None
    assert reason == f"UnidentifiedImageError: {expected}"


def _palette_pngs() -> list[tuple[str, bytes]]:
    """Palette PNGs as tools write them: short palettes, 1- to 8-bit indices, 16 colours, a tRNS chunk of one index,
    of several or shorter than the palette, Pillow's quantized and optimised palettes and an RGBA palette."""
    import io

    rng = np.random.default_rng(0)
    files = []
    for entries, bits, transparency in [
        (1, None, None),
        (2, 1, None),
        (3, 2, 0),
        (5, None, "bytes"),
        (16, 4, None),
        (16, 4, "bytes"),
        (17, None, "short"),
        (200, 8, 0),
        (256, None, "short"),
    ]:
        image = Image.fromarray(rng.integers(0, entries, (9, 13)).astype(np.uint8), "P")
        image.putpalette(rng.integers(0, 256, 3 * entries).tolist())
        keywords: dict[str, Any] = {} if bits is None else {"bits": bits}
        if transparency is not None:
            alphas = bytes(rng.integers(0, 256, entries if transparency == "bytes" else 2).tolist())
            keywords["transparency"] = transparency if isinstance(transparency, int) else alphas
        buffer = io.BytesIO()
        image.save(buffer, "PNG", **keywords)
        files.append((f"{entries} colours, bits {bits}, tRNS {transparency}", buffer.getvalue()))
    rgb = Image.fromarray(rng.integers(0, 256, (30, 40, 3)).astype(np.uint8), "RGB")
    for colours, optimize in ((16, False), (100, True)):
        buffer = io.BytesIO()
        rgb.quantize(colours).save(buffer, "PNG", optimize=optimize)
        files.append((f"quantized to {colours}, optimize {optimize}", buffer.getvalue()))
    rgba = Image.new("P", (4, 4))
    rgba.putpalette([0, 0, 0, 0, 255, 0, 0, 128, 0, 255, 0, 255], "RGBA")
    buffer = io.BytesIO()
    rgba.save(buffer, "PNG")
    files.append(("RGBA palette", buffer.getvalue()))
    return files


@pytest.mark.parametrize(("name", "data"), _palette_pngs(), ids=[name for name, _ in _palette_pngs()])
def test_a_pngs_palette_is_read_from_its_header_as_decoding_gives_it(tmp_path: Path, name: str, data: bytes) -> None:
    # Pillow's getpalette decodes the pixels: the palette check of a data module decoded every palette mask.
    from torchbricks._pictures import stored_palette

    path = tmp_path / "mask.png"
    path.write_bytes(data)
    with Image.open(path) as image:
        read = stored_palette(image, path)
        assert image.tile, name  # not decoded
    with Image.open(path) as image:
        image.load()
        decoded = image.getpalette("RGB")

    assert read == tuple(decoded or ())


def test_the_palette_of_a_png_cut_short_is_none_as_its_decoding_fails(tmp_path: Path) -> None:
    from torchbricks._pictures import stored_palette

    name, data = _palette_pngs()[4]
    path = tmp_path / "mask.png"
    path.write_bytes(data[: data.index(b"IDAT") + 12])  # its header whole, its pixels cut short
    with Image.open(path) as image:
        assert stored_palette(image, path) is None, name
