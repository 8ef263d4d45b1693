from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from torchbricks.bag_of_bricks.backbone_weights import read_state_dict
from torchbricks.bag_of_bricks.compact_cnn import create_task_backbone

SCRIPT = Path(__file__).parents[2] / "scripts" / "pretrain_shapes_backbone.py"


def _load_script() -> Any:
    """The script as a module, with torch on one thread (the run is a small training)."""
    spec = importlib.util.spec_from_file_location("pretrain_shapes_backbone", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    torch.set_num_threads(1)
    return script


@pytest.mark.slow
def test_the_pretraining_script_writes_half_precision_weights_the_compact_cnn_loads(tmp_path: Path) -> None:
    script = _load_script()

    arguments = ["--work", str(tmp_path / "work"), "--out", str(tmp_path / "shapes.pt"), "--num-train", "8"]
    out = script.main([*arguments, "--max-epochs", "1"])

    state = read_state_dict(out)
    assert {value.dtype for value in state.values() if value.is_floating_point()} == {torch.float16}
    trained = torch.load(tmp_path / "work" / "shapes_backbone" / "bricks" / "backbone.pt", weights_only=True)
    assert state.keys() == trained.keys()
    backbone = create_task_backbone("compact_cnn", num_scales=4, weights=str(out))
    stem = next(name for name in state if name.endswith("stem.0.weight"))
    loaded = next(value for name, value in backbone.state_dict().items() if name.endswith("stem.0.weight"))
    torch.testing.assert_close(loaded, trained[stem].half().float())
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically
    resolved = (tmp_path / "work" / "shapes_backbone" / "resolved_config.yaml").read_text()
    assert "weights: null" in resolved  # trained from scratch, not from the file it makes (the task's default: auto)


@pytest.mark.slow
def test_the_pretraining_knobs_change_the_data_drawn_and_its_folder(tmp_path: Path) -> None:
    script = _load_script()

    arguments = ["--work", str(tmp_path / "work"), "--out", str(tmp_path / "small.pt"), "--num-train", "8"]
    script.main([*arguments, "--max-epochs", "1", "--radius", "0.05", "0.08", "--textured", "--max-objects", "2"])

    (data,) = (tmp_path / "work").glob("data_8_*")
    assert "multi_radius_range" in data.name
    assert "textured_background-True" in data.name
    document = json.loads((data / "detection" / "train.json").read_text())
    per_image = Counter(annotation["image_id"] for annotation in document["annotations"])
    assert max(per_image.values()) <= 2
    # a form of radius at most 0.08 * 96 px fits a box of twice that
    assert max(max(annotation["bbox"][2:]) for annotation in document["annotations"]) <= 2 * 0.08 * 96 + 1


@pytest.mark.slow
def test_the_upright_knob_draws_upright_squares_and_trains_without_turns(tmp_path: Path) -> None:
    script = _load_script()

    arguments = ["--work", str(tmp_path / "work"), "--out", str(tmp_path / "upright.pt"), "--num-train", "8"]
    script.main([*arguments, "--max-epochs", "1", "--upright"])

    (data,) = (tmp_path / "work").glob("data_8_*")
    assert "upright-True" in data.name
    document = json.loads((data / "detection" / "train.json").read_text())
    square = next(category["id"] for category in document["categories"] if category["name"] == "square")
    outlines = [annotation["segmentation"][0] for annotation in document["annotations"] if annotation["category_id"] == square]
    assert outlines
    for outline in outlines:  # an upright square's outline has two distinct x and two distinct y values
        assert len({round(x) for x in outline[0::2]}) == 2
        assert len({round(y) for y in outline[1::2]}) == 2
    resolved = (tmp_path / "work" / "shapes_backbone" / "resolved_config.yaml").read_text()
    assert "RandomHorizontalFlip" in resolved
    assert "Rotation" not in resolved
