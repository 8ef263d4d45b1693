"""The shared conventions: logged names built and read back by the same rules, one ignore index for every reader."""

from __future__ import annotations

import pytest
import torch

from torchbricks._conventions import IGNORE_INDEX, LoggedName, logged_name, parse_logged_name


@pytest.mark.parametrize(
    ("stage", "name", "loss", "expected"),
    [
        ("train", "loss", True, LoggedName("train", True, "", "loss")),
        ("validation", "head/loss_ce", True, LoggedName("validation", True, "head", "loss_ce")),
        ("test", "outer/inner/accuracy", False, LoggedName("test", False, "outer/inner", "accuracy")),
    ],
)
def test_a_logged_name_reads_back_as_what_built_it(stage: str, name: str, loss: bool, expected: LoggedName) -> None:
    assert parse_logged_name(logged_name(stage, name, loss=loss)) == expected
    assert parse_logged_name(logged_name(stage, name, loss=loss) + "_epoch") == expected  # Lightning's epoch form


@pytest.mark.parametrize("key", ["train/loss_step", "epoch", "lr-AdamW", "predict/head/accuracy"])
def test_step_values_and_names_of_no_stage_are_not_read(key: str) -> None:
    assert parse_logged_name(key) is None


def test_the_segmentation_loss_and_metric_of_a_head_leave_the_ignored_pixels_out() -> None:
    from torchbricks.bag_of_bricks.segmentation import create_segmentation_head
    from torchbricks.brick_collection import BrickCollection
    from torchbricks.tags import Stage

    torch.manual_seed(0)
    head = BrickCollection({"h": create_segmentation_head(2, [4], ["f"], "masks", output_stride=1, hidden_channels=4)})
    masks = torch.randint(0, 2, (1, 4, 4))
    ignored = masks.clone()
    ignored[0, :2] = IGNORE_INDEX
    features = torch.rand(1, 4, 4, 4)
    outputs = head(named_inputs={"f": features, "masks": ignored}, tags=Stage.TEST)
    expected = torch.nn.functional.cross_entropy(outputs["h/logits"][:, :, 2:], masks[:, 2:])

    torch.testing.assert_close(outputs["h/loss_ce"], expected)
