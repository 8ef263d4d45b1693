from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from torchbricks.bag_of_bricks.brick_visualizer import BrickPerImageVisualization
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickTrainable
from torchbricks.errors import BrickError, BrickNameError, BrickOutputError
from torchbricks.tags import VISUALIZATION, Stage
from torchbricks.tensor_conversions import function_composer, torch_to_numpy, unpack_batched_tensor_to_pillow_images

IMAGES = torch.rand(2, 3, 4, 6)
TARGETS = torch.tensor([0, 1])


def test_default_unpacking_gives_channel_last_images_and_one_dimensional_items() -> None:
    seen: list[tuple[Any, Any]] = []

    def record(image: np.ndarray, target: np.ndarray) -> int:
        seen.append((image, target))
        return len(seen)

    brick = BrickPerImageVisualization(record, input_names=["images", "targets"], output_names=["drawn"])
    outputs = brick({"images": IMAGES, "targets": TARGETS})

    assert outputs == {"drawn": [1, 2]}
    image, target = seen[1]
    assert isinstance(image, np.ndarray)
    assert image.shape == (4, 6, 3)
    np.testing.assert_allclose(image, IMAGES[1].permute(1, 2, 0).numpy())
    assert target.shape == (1,)
    assert target[0] == 1


def test_per_name_unpacking_wins_over_per_type_unpacking() -> None:
    types_seen = []
    brick = BrickPerImageVisualization(
        lambda image, target: types_seen.append((type(image), type(target))),
        input_names=["images", "targets"],
        output_names=["drawn"],
        unpack_functions_for_type={torch.Tensor: unpack_batched_tensor_to_pillow_images},
        unpack_functions_for_input_name={"targets": function_composer(torch_to_numpy, list)},
    )
    brick({"images": IMAGES, "targets": TARGETS})
    assert types_seen == [(Image.Image, np.int64)] * 2


def test_lists_are_taken_as_already_per_image() -> None:
    brick = BrickPerImageVisualization(lambda name, label: f"{name}:{label[0]}", ["names", "labels"], ["texts"])
    assert brick({"names": ["a", "b"], "labels": TARGETS})["texts"] == ["a:0", "b:1"]


def test_a_tuple_per_image_is_split_over_several_output_names() -> None:
    brick = BrickPerImageVisualization(lambda target: (int(target[0]), -int(target[0])), ["targets"], ["plus", "minus"])
    assert brick({"targets": torch.tensor([3, 4])}) == {"plus": [3, 4], "minus": [-3, -4]}


def test_a_wrong_number_of_returned_values_names_the_output_names() -> None:
    brick = BrickPerImageVisualization(lambda target: 1, ["targets"], ["plus", "minus"])
    with pytest.raises(
        BrickOutputError, match=r"returned a int for an image, but the brick has 2 output_names \['plus', 'minus'\]"
    ):
        brick({"targets": TARGETS})


def test_without_output_names_the_callable_is_a_sink_called_per_image() -> None:
    calls = []
    brick = BrickPerImageVisualization(lambda target: calls.append(int(target[0])), ["targets"], None)
    assert brick({"targets": torch.tensor([5, 6, 7])}) == {}
    assert calls == [5, 6, 7]


def test_dict_input_names_pass_keyword_arguments() -> None:
    brick = BrickPerImageVisualization(
        lambda *, label, image: f"{image.shape}-{label[0]}",
        input_names={"image": "images", "label": "targets"},
        output_names=["out"],
    )
    assert brick({"images": IMAGES, "targets": TARGETS})["out"] == ["(4, 6, 3)-0", "(4, 6, 3)-1"]


def test_an_unknown_input_name_in_the_overrides_suggests_the_close_one() -> None:
    with pytest.raises(BrickNameError, match=r"'target', which is not an input name.*Did you mean 'targets'\?"):
        BrickPerImageVisualization(print, ["images", "targets"], ["out"], unpack_functions_for_input_name={"target": list})


def test_inputs_of_different_batch_sizes_are_rejected_with_the_sizes() -> None:
    brick = BrickPerImageVisualization(print, ["images", "targets"], ["out"])
    with pytest.raises(BrickError, match=r"different numbers of images \{'images': 2, 'targets': 3\}"):
        brick({"images": IMAGES, "targets": torch.tensor([0, 1, 2])})


def test_an_input_the_unpack_function_rejects_is_named_in_the_error() -> None:
    brick = BrickPerImageVisualization(
        print, ["images"], ["out"], unpack_functions_for_input_name={"images": unpack_batched_tensor_to_pillow_images}
    )
    with pytest.raises(BrickError, match=r"BrickPerImageVisualization\(print\): cannot unpack input 'images': .*\[B, C, H, W\]"):
        brick({"images": torch.rand(2, 4, 6)})


def test_inputs_that_cannot_be_split_are_given_whole_to_every_image() -> None:
    calls: list[tuple[Any, ...]] = []

    def record(image: Any, scale: Any, everything: Any, title: Any, offset: Any) -> int:
        calls.append((image.shape, scale, everything, title, offset))
        return len(calls)

    brick = BrickPerImageVisualization(record, ["images", "scale", "__all__", "title", "offset"], ["out"])
    named_inputs = {"images": IMAGES, "scale": 0.5, "title": "digits", "offset": torch.tensor(3)}

    outputs = brick(named_inputs)

    assert outputs == {"out": [1, 2]}
    assert [call[1:2] + call[3:4] for call in calls] == [(0.5, "digits")] * 2
    assert all(call[0] == (4, 6, 3) for call in calls)
    assert all(set(call[2]) >= {"images", "scale", "title"} for call in calls)  # __all__: every named input, whole
    assert [int(call[4]) for call in calls] == [3, 3]


def test_an_unpack_function_of_none_gives_the_whole_value() -> None:
    shapes: list[tuple[int, ...]] = []
    brick = BrickPerImageVisualization(
        lambda image, batch: shapes.append((*image.shape, *batch.shape)),
        ["images", "batch"],
        [],
        unpack_functions_for_input_name={"batch": None},
    )
    brick({"images": IMAGES, "batch": IMAGES})
    assert shapes == [(4, 6, 3, 2, 3, 4, 6)] * 2

    tensors_whole = BrickPerImageVisualization(
        lambda label, batch: batch.shape[0],
        ["labels", "batch"],
        ["n"],
        unpack_functions_for_type={torch.Tensor: None, list: list},
    )
    assert tensors_whole({"labels": ["a", "b", "c"], "batch": IMAGES}) == {"n": [2, 2, 2]}


def test_no_input_that_can_be_split_is_an_error_naming_the_inputs() -> None:
    brick = BrickPerImageVisualization(print, ["scale", "title"], ["out"])
    with pytest.raises(BrickError, match=r"no input can be split per image.*\['scale', 'title'\]"):
        brick({"scale": 0.5, "title": "x"})


def test_the_042_unpack_tables_keep_tensors_or_make_channel_last_arrays() -> None:
    from torchbricks.bag_of_bricks.brick_visualizer import UNPACK_NO_CONVERSION, UNPACK_TENSORS_TO_NDARRAYS

    seen: list[Any] = []
    keep = BrickPerImageVisualization(seen.append, ["images"], [], unpack_functions_for_type=UNPACK_NO_CONVERSION)
    keep({"images": IMAGES})
    assert all(isinstance(item, torch.Tensor) for item in seen)
    torch.testing.assert_close(seen[1], IMAGES[1])

    seen.clear()
    masks = torch.rand(2, 4, 6)
    arrays = BrickPerImageVisualization(seen.append, ["masks"], [], unpack_functions_for_type=UNPACK_TENSORS_TO_NDARRAYS)
    arrays({"masks": masks})
    np.testing.assert_array_equal(seen[0], masks.numpy()[0].T)  # 0.4.2 made any 3-d tensor channel last

    seen.clear()
    arrays({"masks": masks.numpy()})  # numpy arrays are split along the batch axis, unchanged
    np.testing.assert_array_equal(seen[1], masks.numpy()[1])


def test_a_non_callable_is_rejected() -> None:
    with pytest.raises(BrickError, match="callable must be callable, got int"):
        BrickPerImageVisualization(3, ["images"], ["out"])  # type: ignore[arg-type]


def test_visualizations_run_in_test_and_inference_but_never_in_train_validation_or_export() -> None:
    collection = BrickCollection(
        {
            "identity": BrickTrainable(torch.nn.Identity(), input_names=["raw"], output_names=["images"]),
            "visualize": BrickPerImageVisualization(lambda image: image.shape, ["images"], ["shapes"]),
        }
    )
    assert collection["visualize"].tags == frozenset({VISUALIZATION})
    for stage in (Stage.TEST, Stage.INFERENCE):
        assert collection({"raw": IMAGES}, tags=stage)["shapes"] == [(4, 6, 3), (4, 6, 3)]
    for stage in (Stage.TRAIN, Stage.VALIDATION, Stage.EXPORT):
        assert "shapes" not in collection({"raw": IMAGES}, tags=stage)


class _BrickDrawTarget(BrickPerImageVisualization):
    """The spec's pattern: attributes set before super().__init__, a bound method as the callable."""

    def __init__(self, class_names: list[str]) -> None:
        self.class_names = class_names
        super().__init__(
            callable=self.name_of,
            input_names=["targets"],
            output_names=["./names"],
            unpack_functions_for_input_name={"targets": function_composer(torch_to_numpy, list)},
        )

    def name_of(self, target: np.int64) -> str:
        return self.class_names[target]


def test_a_subclass_can_set_attributes_first_and_pass_a_bound_method() -> None:
    brick = _BrickDrawTarget(["cat", "dog"])
    collection = BrickCollection({"head": {"draw": brick}})
    assert collection({"targets": TARGETS})["head/names"] == ["cat", "dog"]
    assert repr(brick) == (
        "_BrickDrawTarget(_BrickDrawTarget.name_of, input_names=['targets'], output_names=['./names'], tags={'VISUALIZATION'})"
    )


def test_lambdas_are_described_without_angle_brackets_so_graph_labels_stay_valid() -> None:
    brick = BrickPerImageVisualization(lambda image: image, ["images"], ["out"])
    assert brick.describe() == "test_lambdas_are_described_without_angle_brackets_so_graph_labels_stay_valid.lambda"
