"""The checks of single config values: one ConfigError naming the key, with the close match."""

from __future__ import annotations

import omegaconf
import pytest
from omegaconf import OmegaConf

from torchbricks.configuration._values import choice, flag, is_int, is_number, read_loss_weights
from torchbricks.errors import ConfigError


def test_booleans_are_neither_ints_nor_numbers() -> None:
    assert (is_int(3), is_int(True), is_number(0.5), is_number(False)) == (True, False, True, False)


def test_a_flag_must_be_true_or_false_and_its_key_is_named() -> None:
    assert flag(OmegaConf.create({}), "compile", default=True) is True
    with pytest.raises(ConfigError, match=r"^Config key 'trainer.enable_progress_bar' must be true or false, got 'yes'.$"):
        flag(OmegaConf.create({"enable_progress_bar": "yes"}), "enable_progress_bar", True, "trainer.")


def test_a_choice_outside_the_list_names_the_close_match() -> None:
    assert choice("skip", "missing_targets", ("error", "skip")) == "skip"
    with pytest.raises(ConfigError, match=r"must be one of \['error', 'skip'\], got 'skp'.*Did you mean 'skip'\?"):
        choice("skp", "missing_targets", ("error", "skip"))


def test_loss_weights_are_floats_by_name_and_a_non_number_names_its_key() -> None:
    assert read_loss_weights(OmegaConf.create({"head/loss_ce": 2}), omegaconf) == {"head/loss_ce": 2.0}
    with pytest.raises(ConfigError, match=r"Config key 'loss_weights.head/loss_ce' must be a number, got str 'x'"):
        read_loss_weights(OmegaConf.create({"head/loss_ce": "x"}), omegaconf)
