"""compose_config: Hydra's compose API with one-line errors naming the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from torchbricks import BrickError
from torchbricks.configuration import CONFIG_DIR, compose_config
from torchbricks.configuration.compose import override_string
from torchbricks.errors import ConfigError


def test_packaged_configs_compose_into_model_data_trainer_and_optimizer() -> None:
    config = compose_config()

    assert set(config) >= {"model", "data", "trainer", "optimizer", "experiment"}
    assert (CONFIG_DIR / "train.yaml").is_file()


def test_overrides_change_the_composed_config() -> None:
    config = compose_config(["trainer.max_epochs=3", "data.batch_size=16"])

    assert (config.trainer.max_epochs, config.data.batch_size) == (3, 16)


def test_unknown_override_key_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"'trainer\.max_epoch' does not exist.*Did you mean 'trainer\.max_epochs'\?"):
        compose_config(["trainer.max_epoch=3"])


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


def test_an_override_of_hydras_own_config_is_refused_with_what_to_use_instead() -> None:
    with pytest.raises(ConfigError, match=r"'hydra.run.dir=out' sets Hydra's own config.*experiment.path_experiments"):
        compose_config(["hydra.run.dir=out"])


def test_an_override_hydra_cannot_merge_says_why() -> None:
    with pytest.raises(ConfigError, match=r"Error merging override data.augmentations.5.p=0.3: list index out of range"):
        compose_config(["task=classification", "data.root=.", "data.augmentations.5.p=0.3"])


@pytest.mark.parametrize(
    ("override", "quoted"),
    [("data.root=/data/Zürich", "data.root='/data/Zürich'"), ("data.root=/data/a#1", "data.root='/data/a#1'")],
)
def test_a_value_hydra_reads_only_quoted_is_refused_with_the_quoted_override(override: str, quoted: str) -> None:
    # Hydra's own message was "LexerNoViableAltException: data.root=/data/Zürich ^"
    with pytest.raises(ConfigError, match=rf"override '{re.escape(override)}' cannot be read.* {re.escape(quoted)} "):
        compose_config(["task=classification", override])
    assert compose_config(["task=classification", quoted]).data.root == override.partition("=")[2]


def test_a_home_folder_path_is_read_and_each_user_path_of_the_config_starts_at_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shell leaves `data.root=~/x` as it is: Hydra refused it unquoted, and quoted the readers took '~' as a folder
    # of that name under the current one.
    from torchbricks._experiment import with_home_expanded

    monkeypatch.setenv("HOME", str(tmp_path))
    overrides = ["task=detection", "data.root=~/data/shapes", "model.weights=~/start.pt", "experiment.path_experiments=~/runs"]

    config = compose_config(overrides)

    assert config.data.root == "~/data/shapes"  # as given: config.yaml keeps what the user typed until the job runs
    expanded = with_home_expanded(config)
    assert expanded.data.root == str(tmp_path / "data" / "shapes")
    assert expanded.model.bricks.backbone.model.weights == str(tmp_path / "start.pt")  # through ${model.weights}
    assert expanded.experiment.path_experiments == str(tmp_path / "runs")
    sources = "data.sources=[{task: detection, root: ~/a}, {task: segmentation, root: '~/b'}, {task: classification, root: /c}]"
    expanded = with_home_expanded(compose_config(["task=multitask", sources])).data.sources  # a list's ~ unquoted too
    assert [source.root for source in expanded] == [str(tmp_path / "a"), str(tmp_path / "b"), "/c"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("task=clasification", "Config group 'task' has no option 'clasification'. Available: ['classification', "),
        ("+head@model.bricks.second=clasification", "Config group 'head' has no option 'clasification'. Available: ["),
    ],
)
def test_a_misspelt_config_option_names_its_group_and_the_close_option(override: str, expected: str) -> None:
    # Hydra's message listed the options and the search path, without the close one
    with pytest.raises(ConfigError, match=re.escape(expected) + r".*\]\. Did you mean 'classification'\?$"):
        compose_config([override])


@pytest.mark.parametrize(
    "value",
    ["data/export (1)", "a,b", "a=b", "it's", 'say "hi"', "C:\\data\\", "C:\\x\\'y", "Zürich", "#1", "[1]", " x ", "true", "123"],
)
def test_override_string_reads_back_as_the_same_string(value: str) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = OverridesParser.create().parse_overrides([f"data.root={override_string(value)}"])[0]

    assert override.value() == value
