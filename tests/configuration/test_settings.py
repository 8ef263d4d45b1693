"""The schema of the job's keys: each bad value is one ConfigError naming its key; good values come out typed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from torchbricks.configuration import compose_config, read_job_settings
from torchbricks.errors import ConfigError


def test_the_packaged_defaults_read_into_typed_settings() -> None:
    settings = read_job_settings(compose_config(["experiment.name=run", "loss_weights={head/loss_ce: 2}"]))

    assert settings.experiment.path_experiments == Path("build/experiments")
    assert settings.experiment.name == "run"
    assert (settings.seed, settings.n_visualized, settings.pictures_every_n_epochs) == (0, 16, 5)
    assert settings.loss_weights == {"head/loss_ce": 2.0}
    assert isinstance(settings.loss_weights["head/loss_ce"], float)
    assert settings.checkpoint.monitored_value == "validation/loss"
    assert settings.checkpoint.averaged_metrics == ()
    assert settings.early_stopping.patience is None
    assert (settings.data.batch_size, settings.data.tile_size) == (64, None)
    assert settings.ema_decay is None
    assert read_job_settings(compose_config(["ema_decay=0.99"])).ema_decay == 0.99


def test_a_list_of_monitored_values_is_followed_through_their_mean() -> None:
    settings = read_job_settings(compose_config(["checkpoint.monitor=[validation/a/map_50,validation/b/mean_iou]"]))

    assert settings.checkpoint.averaged_metrics == ("a/map_50", "b/mean_iou")
    assert settings.checkpoint.monitored_value == "validation/monitored_mean"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=abc", r"^Config key 'seed' must be an int, got str 'abc'\.$"),
        ("n_visualized=-1", r"^Config key 'n_visualized' must be an int >= 0, got int -1\.$"),
        ("export_onnx=maybe", r"^Config key 'export_onnx' must be true or false, got 'maybe'\.$"),
        ("loss_weights={a: x}", r"^Config key 'loss_weights\.a' must be a number, got str 'x'\.$"),
        ("pictures_every_n_epochs=0", r"^Config key 'pictures_every_n_epochs' must be 1 or more \(1: every epoch\), got 0\.$"),
        ("early_stopping.patience=0", r"^Config key 'early_stopping\.patience' must be an int >= 1 .* got int 0\.$"),
        (
            "early_stopping.min_delta=-1.0",
            r"^Config key 'early_stopping\.min_delta' must be a number >= 0, got float -1\.0\.$",
        ),
        ("checkpoint.monitor=[train/loss]", r"^Config key 'checkpoint\.monitor' lists validation values .* got \['train/loss'\]"),
        ("checkpoint.mode=maximum", r"^Config key 'checkpoint\.mode' must be one of \['min', 'max'\], got 'maximum'\."),
        ("missing_targets=skipp", r"^Config key 'missing_targets' must be one of .* got 'skipp'\. Did you mean 'skip'\?$"),
        ("compile=yes", r"^Config key 'compile' must be true or false, got 'yes'\.$"),
        ("ema_decay=1", r"^Config key 'ema_decay' must be null \(no averaging\) or the decay .* such as 0\.99, got int 1\.$"),
        ("ema_decay=0.0", r"^Config key 'ema_decay' must be null .* got float 0\.0\.$"),
        ("ema_decay=true", r"^Config key 'ema_decay' must be null .* got bool True\.$"),
        ("data.batch_size=0", r"^Config key 'data\.batch_size' must be an int >= 1, got 0\.$"),
        (
            "loss_balancing=uncertain",
            r"^Config key 'loss_balancing': Unknown loss balancing 'uncertain'.*'uncertainty'\?$",
        ),
    ],
)
def test_a_bad_value_is_one_error_naming_its_key(override: str, message: str) -> None:
    overrides = [override, "early_stopping.patience=3"] if "min_delta" in override else [override]

    with pytest.raises(ConfigError, match=message):
        read_job_settings(compose_config(overrides))


@pytest.mark.parametrize(
    "overrides",
    [
        ["loss_weights.head/loss_ce=2", "loss_weights.other/loss_bce=0.5"],
        ["loss_weights.head.loss_ce=2", "loss_weights={other/loss_bce: 0.5}"],
    ],
)
def test_loss_weights_take_a_loss_path_in_the_key(overrides: list[str]) -> None:
    settings = read_job_settings(compose_config(overrides))

    assert settings.loss_weights == {"head/loss_ce": 2.0, "other/loss_bce": 0.5}


def test_a_loss_weight_given_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'loss_weights' gives loss 'head/loss_ce' twice"):
        read_job_settings(compose_config(["loss_weights={head/loss_ce: 2, head: {loss_ce: 3}}"]))


def test_loss_weights_with_a_learned_balancing_are_refused() -> None:
    config = compose_config(["loss_balancing=dwa", "loss_weights={head/loss_ce: 0.5}"])

    with pytest.raises(ConfigError, match=r"'loss_weights' applies to loss_balancing=fixed; loss_balancing=dwa sets its own"):
        read_job_settings(config)


def test_pcgrad_on_several_processes_is_accepted() -> None:
    # PCGrad averages each loss's gradient over the processes (tests/lightning/test_distributed.py).
    settings = read_job_settings(compose_config(["loss_balancing=pcgrad", "trainer.devices=2", "trainer.strategy=ddp"]))
    assert settings.loss_balancing == "pcgrad"


def test_tiling_is_checked_against_the_data_module(tmp_path: Path) -> None:
    classification = ["task=classification", f"data.root={tmp_path}", "data.tile_size=64"]
    segmentation = ["task=segmentation", f"data.root={tmp_path}", "data.tile_size=64"]

    with pytest.raises(ConfigError, match=r"'data\.tile_size' is 64, but ImageFolderDataModule does not tile images"):
        read_job_settings(compose_config(classification))
    with pytest.raises(ConfigError, match=r"'data\.tile_overlap' must be the fraction .* got float 1\.5"):
        read_job_settings(compose_config([*segmentation, "data.tile_overlap=1.5"]))
    assert read_job_settings(compose_config(segmentation)).data.tile_size == 64


def test_an_image_scale_beside_a_given_image_size_is_refused_as_it_would_be_ignored(tmp_path: Path) -> None:
    classification = ["task=classification", f"data.root={tmp_path}"]

    with pytest.raises(ConfigError, match=r"'data\.image_scale' is 2, but data\.image_size is set \(128\)"):
        read_job_settings(compose_config([*classification, "data.image_size=128", "data.image_scale=2"]))
    read_job_settings(compose_config([*classification, "data.image_scale=2"]))  # the default size follows the scale
    read_job_settings(compose_config([*classification, "data.image_size=128", "data.image_scale=1"]))
    with pytest.raises(ConfigError, match=r"'data\.image_scale' is 1\.5, but data\.image_size is set \(128\)"):
        read_job_settings(compose_config([*classification, "data.image_size=128", "data.image_scale=1.5"]))


def test_an_image_scale_beside_a_tile_size_is_refused_and_the_packaged_one_is_not(tmp_path: Path) -> None:
    segmentation = ["task=segmentation", f"data.root={tmp_path}", "data.tile_size=64"]

    with pytest.raises(ConfigError, match=r"'data\.image_scale' is 3, but data\.tile_size is set \(64\)"):
        read_job_settings(compose_config([*segmentation, "data.image_scale=3"]))
    assert read_job_settings(compose_config(segmentation)).data.tile_size == 64  # the packaged scale (2) is not the user's
    read_job_settings(compose_config([*segmentation, "data.image_scale=1"]))
    detection = ["task=detection", f"data.root={tmp_path}", "data.tile_size=64"]
    with pytest.raises(ConfigError, match=r"'data\.image_scale' is 2, but data\.tile_size is set \(64\)"):
        read_job_settings(compose_config([*detection, "data.image_scale=2"]))
    assert read_job_settings(compose_config(detection)).data.tile_size == 64


def test_the_packaged_image_scale_leaves_a_given_image_size_alone(tmp_path: Path) -> None:
    config = compose_config(["task=classification", f"data.root={tmp_path}", "data.image_size=128"])

    read_job_settings(config)  # the packaged scale (1.5) is not the user's: nothing is refused
    assert config.data.image_scale == 1.5
    assert config.data.image_size == 128


def test_last_phase_augmentations_where_no_last_phase_starts_are_refused(tmp_path: Path) -> None:
    flip = "data.last_phase_augmentations=[{_target_:torchvision.transforms.v2.RandomHorizontalFlip,p:0.5}]"
    classification = ["task=classification", f"data.root={tmp_path}", flip]

    read_job_settings(compose_config(classification))  # the classification task has its last phase
    with pytest.raises(ConfigError, match=r"'data\.last_phase_augmentations' .* never starts: .* \(now False and 10\)"):
        read_job_settings(compose_config([*classification, "early_stopping.finish_without_augmentations=false"]))
    with pytest.raises(ConfigError, match=r"'data\.last_phase_augmentations' .* \(now True and None\)"):
        read_job_settings(compose_config([*classification, "early_stopping.patience=null"]))
    segmentation = ["task=segmentation", f"data.root={tmp_path}"]
    read_job_settings(compose_config(segmentation))  # its packaged [] with no last phase is not refused
    with pytest.raises(ConfigError, match=r"'data\.last_phase_augmentations'"):
        read_job_settings(compose_config([*segmentation, flip]))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["task=classification"], "'data.root' has no value (??? in its config); set it on the command line: data.root=DIR"),
        (["model=vision"], "'model.layout' has no value (??? in its config); set it on the command line: model.layout=VALUE"),
    ],
)
def test_a_value_the_user_must_give_is_named_with_how_to_set_it(overrides: list[str], expected: str) -> None:
    # A new user's first command, `torchbricks train task=classification`, ended in "Config key 'data' cannot be
    # instantiated: Missing mandatory value: data.root full_key: data.root object_type=dict".
    with pytest.raises(ConfigError, match=re.escape(expected)):
        read_job_settings(compose_config(overrides))


def test_hidden_channels_given_for_a_classification_head_which_reads_none_is_refused_naming_the_key(tmp_path: Path) -> None:
    # task=classification model.hidden_channels=128 trained the very model of the default, without a word: the
    # classifier is linear on the pooled features and nothing reads the key.
    with pytest.raises(ConfigError, match=r"'model\.hidden_channels' is 128, but no brick of the model reads it"):
        read_job_settings(compose_config(["task=classification", f"data.root={tmp_path}", "model.hidden_channels=128"]))
    read_job_settings(compose_config(["task=classification", f"data.root={tmp_path}"]))  # the unread default: no word
    for task in ("detection", "segmentation", "multitask"):  # heads that read it take it
        read_job_settings(compose_config([f"task={task}", f"data.root={tmp_path}", "model.hidden_channels=128"]))
    added = ["+head@model.bricks.segmentation=segmentation", "model.hidden_channels=16"]  # a head added beside reads it
    read_job_settings(compose_config(["task=classification", f"data.root={tmp_path}", *added]))
    # a config.yaml of a classification run saved before the default was an interpolation: resumed as it is
    read_job_settings(compose_config(["task=classification", f"data.root={tmp_path}", "model.hidden_channels=64", "resume=true"]))
