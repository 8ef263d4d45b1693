from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchbricks import BrickCollection, BrickError, DuplicateOutputError, Stage
from torchbricks.configuration import CONFIG_DIR, compose_config, create_brick_collection, instantiate_config
from torchbricks.errors import ConfigError
from torchbricks.lightning import LightningBrickCollection


def test_packaged_configs_compose_into_model_data_trainer_and_optimizer() -> None:
    config = compose_config()

    assert set(config) >= {"model", "data", "trainer", "optimizer", "experiment"}
    assert (CONFIG_DIR / "train.yaml").is_file()


def test_overrides_change_the_composed_config() -> None:
    config = compose_config(["trainer.max_epochs=3", "data.batch_size=16"])

    assert (config.trainer.max_epochs, config.data.batch_size) == (3, 16)


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


def test_unknown_override_key_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"'trainer\.max_epoch' does not exist.*Did you mean 'trainer\.max_epochs'\?"):
        compose_config(["trainer.max_epoch=3"])


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
    config = compose_config(["model.bricks.head.loss.output_names=[features]"])

    with pytest.raises(DuplicateOutputError, match="'features'") as raised:
        create_brick_collection(config)
    assert "config key 'model.bricks'" in raised.value.__notes__[0]


def test_an_unknown_config_name_lists_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"No config 'trian'.*Did you mean 'train'"):
        compose_config(config_name="trian")
    assert issubclass(ConfigError, BrickError)


def test_compose_works_inside_an_initialized_hydra_application_and_leaves_it_alone() -> None:
    import hydra

    with hydra.initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        ours = compose_config(["trainer.max_epochs=2"])
        theirs = hydra.compose("train", overrides=["data.batch_size=3"])

    assert (ours.trainer.max_epochs, theirs.data.batch_size) == (2, 3)


def test_a_head_with_at_least_the_data_classes_passes_the_class_check() -> None:
    from torchbricks.configuration import check_classes_cover_data
    from torchbricks.lightning.datamodules import DigitsDataModule

    for num_classes in (10, 11):  # 11: a spare class (a segmentation background) is allowed
        collection = create_brick_collection(compose_config([f"model.num_classes={num_classes}"]))
        check_classes_cover_data(DigitsDataModule(), collection)
    with pytest.raises(ConfigError, match=r"brick 'head/classify' \(ImageClassifier\) has 9 classes.*has 10"):
        check_classes_cover_data(DigitsDataModule(), create_brick_collection(compose_config(["model.num_classes=9"])))
