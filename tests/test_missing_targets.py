"""`missing_targets="skip"`: a batch without a head's targets runs the model and skips that head's losses and metrics."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from torchbricks import BrickCollection, BrickLoss, BrickMetricSingle, BrickNotTrainable, BrickTrainable, MissingInputError, Stage
from torchbricks.errors import BrickError


class Names(nn.Module):
    def forward(self, everything: dict[str, object]) -> list[str]:
        return sorted(everything)


def two_heads() -> BrickCollection:
    def head(targets: str, num_classes: int) -> dict[str, object]:
        return {
            "classify": BrickTrainable(nn.Linear(8, num_classes), input_names=["features"], output_names=["./logits"]),
            "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["./logits", targets], output_names=["./loss"]),
            "accuracy": BrickMetricSingle(MulticlassAccuracy(num_classes=num_classes), input_names=["./logits", targets]),
        }

    return BrickCollection(
        {
            "backbone": BrickTrainable(nn.Linear(4, 8), input_names=["raw"], output_names=["features"]),
            "shape": head("shape_targets", 3),
            "colour": head("colour_targets", 2),
        }
    )


def test_a_batch_without_a_heads_targets_skips_its_loss_and_metric_and_runs_the_rest() -> None:
    model = two_heads()
    batch = {"raw": torch.rand(5, 4), "shape_targets": torch.tensor([0, 1, 2, 0, 1])}

    outputs = model(named_inputs=batch, tags=Stage.TRAIN, missing_targets="skip")

    assert list(model.extract_losses(outputs)) == ["shape/loss"]
    assert {"shape/logits", "colour/logits"} <= set(outputs)  # both heads' model bricks ran
    expected = nn.functional.cross_entropy(outputs["shape/logits"], batch["shape_targets"])
    torch.testing.assert_close(outputs["shape/loss"], expected)
    metrics = model.summarize(reset=True)
    assert list(metrics) == ["shape/MulticlassAccuracy"]  # the colour metric saw no batch, so it is not reported


def test_a_batch_with_every_target_runs_every_loss_in_skip_mode() -> None:
    model = two_heads()
    batch = {"raw": torch.rand(2, 4), "shape_targets": torch.tensor([0, 1]), "colour_targets": torch.tensor([1, 0])}
    outputs = model(named_inputs=batch, tags=Stage.TRAIN, missing_targets="skip")
    assert sorted(model.extract_losses(outputs)) == ["colour/loss", "shape/loss"]


def test_the_default_still_raises_for_a_missing_target() -> None:
    with pytest.raises(MissingInputError, match="'colour/loss' needs input 'colour_targets'"):
        two_heads()(named_inputs={"raw": torch.rand(2, 4), "shape_targets": torch.tensor([0, 1])}, tags=Stage.TRAIN)


def test_a_missing_model_input_raises_even_in_skip_mode() -> None:
    with pytest.raises(MissingInputError, match="'backbone' needs input 'raw'"):
        two_heads()(named_inputs={"shape_targets": torch.tensor([0, 1])}, tags=Stage.TRAIN, missing_targets="skip")


def test_an_unknown_missing_targets_value_is_rejected() -> None:
    with pytest.raises(BrickError, match="missing_targets must be 'error' or 'skip', got 'ignore'"):
        two_heads()(named_inputs={"raw": torch.rand(2, 4)}, missing_targets="ignore")  # type: ignore[arg-type]


def test_bricks_downstream_of_a_skipped_brick_are_skipped_but_a_reader_of_everything_runs() -> None:
    model = two_heads()
    model["colour"]["double_loss"] = BrickLoss(lambda loss: 2 * loss, input_names=["./loss"], output_names=["./double"])
    model["describe"] = BrickNotTrainable(Names(), input_names=["__all__"], output_names=["names"], tags=["VISUALIZATION"])
    batch = {"raw": torch.rand(2, 4), "shape_targets": torch.tensor([0, 1])}
    outputs = model(named_inputs=batch, tags=None, missing_targets="skip")
    assert "colour/double" not in outputs
    assert "colour/loss" not in outputs
    assert "shape/loss" in outputs["names"]


def test_compiled_steps_handle_batches_with_and_without_a_heads_targets() -> None:
    torch._dynamo.reset()  # dynamo recompiles per collection; earlier tests' collections count towards its limit
    model = two_heads()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    full = {"raw": torch.rand(3, 4), "shape_targets": torch.tensor([0, 1, 2]), "colour_targets": torch.tensor([1, 0, 1])}
    partial = {"raw": full["raw"], "colour_targets": full["colour_targets"]}
    for batch in (full, partial, full):
        expected = model(named_inputs=batch, tags=Stage.TRAIN, missing_targets="skip")
        actual = compiled(named_inputs=batch, tags=Stage.TRAIN, missing_targets="skip")
        assert list(actual) == list(expected)
        for name, value in expected.items():
            torch.testing.assert_close(actual[name], value)
    model.reset_metrics()


def test_asking_for_the_output_of_a_skipped_loss_says_which_input_is_missing_not_that_tags_left_it_out() -> None:
    batch = {"raw": torch.rand(2, 4), "shape_targets": torch.tensor([0, 1])}
    with pytest.raises(MissingInputError) as error:
        two_heads()(named_inputs=batch, tags=Stage.TRAIN, missing_targets="skip", output_names=["colour/loss"])
    message = str(error.value)
    assert "brick 'colour/loss' would produce, but it is skipped (missing_targets='skip'): named_inputs lacks" in message
    assert "its input 'colour_targets'" in message
    assert "tags" not in message
    assert "Did you mean 'colour/loss'" not in message  # the skipped output is not offered as available


def test_a_model_brick_reading_a_skipped_output_names_the_skipped_brick_it_depends_on() -> None:
    model = two_heads()
    model["colour"]["shift"] = BrickLoss(nn.Identity(), input_names=["./loss"], output_names=["./shifted"])
    model["reads_shifted"] = BrickTrainable(nn.Identity(), input_names=["colour/shifted"], output_names=["again"])
    batch = {"raw": torch.rand(2, 4), "shape_targets": torch.tensor([0, 1])}
    with pytest.raises(
        MissingInputError, match=r"Brick 'reads_shifted' needs input 'colour/shifted', which brick 'colour/shift'"
    ) as error:
        model(named_inputs=batch, tags=Stage.TRAIN, missing_targets="skip")
    assert "is skipped (missing_targets='skip'): it depends on brick 'colour/loss', which is skipped" in str(error.value)
