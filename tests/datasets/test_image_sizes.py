from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from torchbricks.datasets.image_sizes import choose_image_size, read_image_sizes, typical_image_size
from torchbricks.datasets.readers import DataError
from torchbricks.datasets.shapes import write_shapes_dataset
from torchbricks.errors import ConfigError


def _image_folder(root: Path, sizes: list[tuple[int, int]]) -> Path:
    for index, (height, width) in enumerate(sizes):
        folder = root / "train" / ("a" if index % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (width, height)).save(folder / f"{index}.png")
    return root


def test_the_size_is_the_median_height_and_width_rounded_to_the_multiple() -> None:
    choice = choose_image_size([(90, 200), (100, 210), (110, 300), (500, 190)], multiple=32)

    assert choice.median == (105.0, 205.0)
    assert choice.size == (96, 192)  # 105 -> 3.3 x 32, 205 -> 6.4 x 32
    assert not choice.capped


def test_large_photographs_are_scaled_down_to_the_cap_keeping_their_aspect() -> None:
    choice = choose_image_size([(3000, 4000)], multiple=32, max_side=512)

    assert choice.size == (384, 512)
    assert choice.capped
    assert "scaled down" in choice.describe()


def test_tiny_images_get_at_least_one_multiple() -> None:
    assert choose_image_size([(8, 8)], multiple=32).size == (32, 32)


def test_an_image_folder_is_read_from_its_headers_and_sampled(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "data", [(64, 48)] * 6 + [(200, 200)] * 3)

    sizes, total = read_image_sizes("image_folder", root, max_sampled=4)
    choice = typical_image_size("image_folder", root)

    assert (len(sizes), total) == (4, 9)
    assert choice.size == (64, 64)  # median 64 x 48: 48 rounds to 64 (1.5 x 32, to the even multiple)
    assert "of 9 of the 9 images the training split comes from" in choice.describe()


def test_coco_sizes_come_from_the_json(tmp_path: Path) -> None:
    images = [{"id": index, "file_name": f"{index}.png", "height": 300, "width": 400} for index in range(5)]
    (tmp_path / "train.json").write_text(json.dumps({"images": images, "annotations": [], "categories": []}))

    assert typical_image_size("coco", tmp_path).size == (288, 384)  # 9.4 and 12.5 multiples of 32, rounded half to even


def test_an_empty_split_and_an_unknown_layout_are_refused(tmp_path: Path) -> None:
    (tmp_path / "train" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no image"):
        read_image_sizes("segmentation_folder", tmp_path)
    with pytest.raises(ConfigError, match=r"Unknown data layout 'image_foldr'.*Did you mean 'image_folder'"):
        read_image_sizes("image_foldr", tmp_path)


def test_the_packaged_task_config_resolves_the_size_from_the_data_and_prints_it_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from omegaconf import OmegaConf

    from torchbricks.configuration import compose_config
    from torchbricks.lightning.task_resolvers import register_resolvers

    register_resolvers()
    root = _image_folder(tmp_path / "data", [(100, 100)] * 3)
    config = compose_config(["task=classification", f"data.root={root}"])

    resolved = OmegaConf.to_container(config, resolve=True)
    again = OmegaConf.to_container(config, resolve=True)

    scale = config.data.image_scale
    expected = round(100 * scale / 32) * 32
    assert resolved["data"]["image_size"] == again["data"]["image_size"] == expected
    times = "from " if scale == 1 else f"{scale:g} times "
    assert capsys.readouterr().out.count(f"data.image_size: {expected}, {times}the median size 100 x 100") == 1
    assert (
        OmegaConf.to_container(compose_config(["task=classification", f"data.root={root}", "data.image_size=40"]))["data"][
            "image_size"
        ]
        == 40
    )


def test_a_scale_multiplies_the_median_before_rounding_and_the_cap_still_holds() -> None:
    doubled = choose_image_size([(96, 96), (100, 90), (90, 120)], scale=2)
    assert doubled.size == (192, 192)
    assert not doubled.capped
    assert "2 times the median size 96 x 96" in doubled.describe()
    assert "(data.image_scale: 2)" in doubled.describe()
    assert choose_image_size([(40, 40)], scale=1.5).size == (64, 64)  # 60 rounds to 64
    capped = choose_image_size([(300, 400)], max_side=512, scale=2, max_enlarged_side=1000)
    assert capped.size == (384, 512)  # 600 x 800 scaled down to the cap, aspect kept
    assert capped.capped
    assert "data.image_size: 96, from the median size 96 x 96" in choose_image_size([(96, 96)]).describe()
    assert "image_scale" not in choose_image_size([(96, 96)]).describe()


def test_the_log_line_says_when_rounding_moved_the_size_away_from_the_scaled_median() -> None:
    rounded = choose_image_size([(96, 96)], scale=1.5)  # 144 is not a multiple of 32
    assert rounded.size == (128, 128)
    assert "1.5 times the median size 96 x 96" in rounded.describe()
    assert ", rounded to a multiple of 32" in rounded.describe()
    assert "rounded" not in choose_image_size([(96, 96)], scale=2).describe()  # 192 exactly
    assert "rounded" not in choose_image_size([(96, 96)]).describe()
    assert ", rounded to a multiple of 16" in choose_image_size([(100, 90)], multiple=16).describe()


@pytest.mark.parametrize("scale", [0, -2, float("inf"), "2", True, None])
def test_a_scale_that_is_not_a_positive_number_names_the_config_key(scale: object) -> None:
    with pytest.raises(ConfigError, match=r"Config key 'data.image_scale' must be a number > 0 .* got "):
        choose_image_size([(96, 96)], scale=scale)  # type: ignore[arg-type]


def test_typical_image_size_checks_the_scale_before_reading_the_data(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.image_scale"):
        typical_image_size("image_folder", tmp_path / "absent", scale=0)
    root = _image_folder(tmp_path / "data", [(64, 64)] * 3)
    assert typical_image_size("image_folder", root, scale=2).size == (128, 128)


def test_the_task_config_scales_the_size_by_data_image_scale_and_a_bad_scale_stops_the_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from omegaconf import OmegaConf

    from torchbricks.__main__ import main
    from torchbricks.configuration import compose_config
    from torchbricks.lightning.task_resolvers import register_resolvers

    register_resolvers()
    root = _image_folder(tmp_path / "data", [(100, 100)] * 3)
    config = compose_config(["task=classification", f"data.root={root}", "data.image_scale=1.5"])
    assert OmegaConf.to_container(config.data, resolve=True)["image_size"] == 160  # 150 rounds to 160
    capsys.readouterr()

    status = main(
        [
            "train",
            "task=classification",
            f"data.root={root}",
            f"experiment.path_experiments={tmp_path}",
            "experiment.name=run",
            "data.image_scale=0",
        ]
    )

    error = capsys.readouterr().err.strip()
    assert status == 2
    assert len(error.splitlines()) == 1
    assert "Config key 'data.image_scale' must be a number > 0" in error
    assert not (tmp_path / "run").exists()


def test_the_segmentation_config_reads_small_images_at_twice_their_median_size_and_tiles_at_the_tile_size(
    tmp_path: Path,
) -> None:
    from omegaconf import OmegaConf

    from torchbricks.configuration import compose_config
    from torchbricks.lightning.task_resolvers import register_resolvers

    register_resolvers()
    root = write_shapes_dataset(tmp_path / "shapes", num_train=3, num_val=1, image_size=64) / "segmentation"

    def resolved_size(*overrides: str) -> Any:
        config = compose_config(["task=segmentation", f"data.root={root}", *overrides])
        return OmegaConf.to_container(config.data, resolve=True)["image_size"]

    packaged = compose_config(["task=segmentation", f"data.root={root}"]).data.image_scale
    assert packaged == 2
    assert resolved_size() == 128
    assert resolved_size("data.image_scale=1") == 64
    assert resolved_size("data.tile_size=32") == 32  # tiles are the input at their own size
    assert resolved_size("data.image_size=80") == 80


def test_the_box_configs_read_small_images_at_twice_their_median_size_and_tiles_at_the_tile_size(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from torchbricks.configuration import compose_config
    from torchbricks.lightning.task_resolvers import register_resolvers

    register_resolvers()
    root = write_shapes_dataset(tmp_path / "shapes", num_train=3, num_val=1, image_size=64) / "detection"

    def resolved_size(task: str, *overrides: str) -> Any:
        config = compose_config([f"task={task}", f"data.root={root}", *overrides])
        return OmegaConf.to_container(config.data, resolve=True)["image_size"]

    assert resolved_size("detection") == 128
    assert resolved_size("detection", "data.image_scale=1") == 64
    assert resolved_size("detection", "data=coco") == 128
    assert resolved_size("detection", "data=coco", "data.image_scale=1.5") == 96
    assert resolved_size("detection", "data.tile_size=32") == 32
    assert resolved_size("multitask") == 128
    assert resolved_size("multitask", "data.image_scale=1") == 64


def test_a_scale_enlarges_small_images_only_up_to_the_limit_and_never_shrinks_larger_ones() -> None:
    part_way = choose_image_size([(160, 120)], scale=2)
    assert part_way.size == (256, 192)  # 1.6 times: the larger side reaches 256, the aspect is kept
    assert part_way.factor == pytest.approx(1.6)
    assert "which enlarges images to at most 256 px" in part_way.describe()
    assert choose_image_size([(300, 300)], scale=2).size == (288, 288)  # already past the limit: left as it is
    assert choose_image_size([(64, 64)], scale=4, max_enlarged_side=128).size == (128, 128)
    assert choose_image_size([(256, 256)], scale=0.5).size == (128, 128)  # a scale below 1 shrinks at any size
