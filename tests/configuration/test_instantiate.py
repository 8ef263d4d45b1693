from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from torchbricks import BrickCollection, DuplicateOutputError, Stage
from torchbricks.configuration import compose_config, create_brick_collection, instantiate_config
from torchbricks.errors import ConfigError
from torchbricks.lightning import LightningBrickCollection


def test_a_config_builds_the_brick_collection() -> None:
    collection = create_brick_collection(compose_config())

    assert isinstance(collection, BrickCollection)
    assert [path for path, _ in collection.iter_bricks()] == [
        "preprocessor",
        "backbone",
        "upscale",
        "head/classify",
        "head/loss",
        "head/metrics",
        "head/visualize",
    ]
    outputs = collection({"raw": torch.rand(2, 1, 8, 8)}, tags=Stage.EXPORT)
    assert outputs["head/logits"].shape == (2, 10)


def test_a_second_head_is_added_by_config() -> None:
    collection = create_brick_collection(compose_config(["+head@model.bricks.head2=classification"]))

    assert collection.loss_names() == ["head/loss_ce", "head2/loss_ce"]
    outputs = collection({"raw": torch.rand(2, 1, 8, 8), "targets": torch.tensor([1, 2])}, tags=Stage.TRAIN)
    assert outputs["head2/logits"].shape == (2, 10)


def test_a_collection_from_config_trains_a_step() -> None:
    config = compose_config(["data.batch_size=8"])
    collection = create_brick_collection(config)
    module = LightningBrickCollection("build", "config-step", collection, instantiate_config(config, "optimizer"))
    data = instantiate_config(config, "data")
    data.setup()
    batch = next(iter(data.train_dataloader()))
    optimizer = module.configure_optimizers()
    before = [parameter.detach().clone() for parameter in collection.parameters()]

    loss = module.training_step(batch, batch_idx=0)["loss"]
    loss.backward()
    optimizer.step()

    assert torch.isfinite(loss)
    assert any(not torch.equal(old, new) for old, new in zip(before, collection.parameters(), strict=True))


def test_unknown_target_names_the_config_key() -> None:
    config = compose_config(["model.bricks.backbone.model._target_=torch.nn.Nope"])

    with pytest.raises(ConfigError, match=r"Config key 'model\.bricks\.backbone\.model' cannot be instantiated.*torch\.nn\.Nope"):
        create_brick_collection(config)


def test_a_value_of_the_wrong_plain_type_names_the_key_before_instantiation() -> None:
    config = compose_config(["trainer.max_epochs=abc"])
    with pytest.raises(ConfigError, match=r"Config key 'trainer\.max_epochs' must be None or int, got str 'abc'"):
        instantiate_config(config, "trainer")


def test_values_matching_plain_annotations_pass_the_type_check() -> None:
    config = compose_config(["trainer.max_epochs=2", "+trainer.gradient_clip_val=1"])  # an int where a float is expected
    trainer = instantiate_config(config, "trainer", logger=False)
    assert trainer.max_epochs == 2
    assert trainer.gradient_clip_val == 1


def test_a_bool_is_not_taken_for_an_int() -> None:
    config = compose_config(["trainer.max_epochs=true"])
    with pytest.raises(ConfigError, match=r"'trainer\.max_epochs' must be None or int, got bool True"):
        instantiate_config(config, "trainer")


def test_wrong_arguments_name_the_config_key() -> None:
    config = compose_config(["+model.bricks.extra._target_=torch.nn.Linear"])

    with pytest.raises(ConfigError, match=r"Config key 'model\.bricks\.extra' cannot be instantiated.*in_features"):
        create_brick_collection(config)


def test_a_brick_rejecting_its_arguments_names_the_config_key() -> None:
    config = compose_config(["model.bricks.backbone.output_names=[3]"])

    with pytest.raises(ConfigError, match=r"Config key 'model\.bricks\.backbone' cannot be instantiated.*non-empty strings"):
        create_brick_collection(config)


def test_a_node_that_is_not_a_brick_names_the_config_key() -> None:
    config = compose_config(["+model.bricks.extra._target_=torch.nn.Identity"])

    with pytest.raises(ConfigError, match=r"'model\.bricks\.extra' made a Identity \(torch\.nn\.Identity\), not a brick"):
        create_brick_collection(config)


def test_a_missing_key_lists_what_is_available() -> None:
    with pytest.raises(ConfigError, match=r"Config key 'model\.brick' is missing.*Did you mean 'bricks'"):
        create_brick_collection(compose_config(), key="model.brick")


def test_a_wiring_error_is_a_brick_error_noting_the_config_key() -> None:
    wiring = [
        "model.bricks.head.loss.output_names=[features,./loss_parts]",
        "model.bricks.head.loss.loss_output_names=[features]",
    ]
    config = compose_config(wiring)

    with pytest.raises(DuplicateOutputError, match="'features'") as raised:
        create_brick_collection(config)
    assert "config key 'model.bricks'" in raised.value.__notes__[0]


def test_an_item_of_a_list_is_named_with_its_index_as_the_command_line_names_it() -> None:
    from omegaconf import OmegaConf

    bad = {"_target_": "torchvision.transforms.v2.RandomVerticalFlipp"}
    config = OmegaConf.create({"data": {"_target_": "builtins.dict", "augmentations": [{"_target_": "builtins.dict"}, bad]}})

    with pytest.raises(ConfigError, match=r"^Config key 'data\.augmentations\.1' cannot be instantiated"):
        instantiate_config(config, "data")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.image_size=0", "Config key 'data.image_size': image_size must be a positive int or [height, width], got 0."),
        ("data.cache_megabytes=-1", "Config key 'data.cache_megabytes' must be the memory in megabytes"),
        ("data.image_scale=0", "Config key 'data.image_scale' must be a number > 0"),  # raised by a resolver
    ],
)
def test_an_argument_the_data_module_refuses_is_named_by_its_key(tmp_path: Path, override: str, expected: str) -> None:
    # Both were "Config key 'data' cannot be instantiated: Error in call to target '...ImageFolderDataModule': ..."
    from PIL import Image

    from torchbricks.lightning.task_resolvers import register_resolvers

    for split in ("train", "val"):
        (tmp_path / split / "cat").mkdir(parents=True)
        Image.new("RGB", (16, 16)).save(tmp_path / split / "cat" / "a.png")
    register_resolvers()
    config = compose_config(["task=classification", f"data.root={tmp_path}", override])

    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}"):
        instantiate_config(config, "data")


def test_an_error_raised_while_resolving_an_interpolation_is_one_line_without_omegaconfs_key_lines(tmp_path: Path) -> None:
    # It ended in "Did you mean 'resnet18'? full_key: model.bricks.backbone.output_names object_type=dict"
    from PIL import Image

    from torchbricks.lightning.task_resolvers import register_resolvers

    for split in ("train", "val"):
        (tmp_path / split / "cat").mkdir(parents=True)
        Image.new("RGB", (16, 16)).save(tmp_path / split / "cat" / "a.png")
    register_resolvers()
    config = compose_config(["task=classification", f"data.root={tmp_path}", "data.image_size=32", "model.backbone=resnet19"])

    expected = r"^Config key 'model\.bricks\.backbone' cannot be instantiated: .*'resnet19'\. Did you mean 'resnet18'\?$"
    with pytest.raises(ConfigError, match=expected):
        create_brick_collection(config)
