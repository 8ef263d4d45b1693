from __future__ import annotations

from pathlib import Path

from torchbricks._cli_help import describe_config_groups, read_config_groups


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_groups_options_defaults_and_descriptions_come_from_the_yaml_files(tmp_path: Path) -> None:
    _write(
        tmp_path / "train.yaml", "# top\ndefaults:\n  - data: folder  # a comment\n  - /task@here: detect\n  - _self_\nseed: 0\n"
    )
    _write(tmp_path / "data" / "digits.yaml", "# Handwritten digits. More words here.\n_target_: x\n")
    _write(tmp_path / "data" / "folder.yaml", "_target_: y\n")
    _write(tmp_path / "task" / "detect.yaml", "# Boxes\n")
    _write(tmp_path / "task" / "nested" / "deep.yaml", "# Deep option\n")
    (tmp_path / "empty").mkdir()

    groups = {group.name: group for group in read_config_groups(tmp_path)}

    assert sorted(groups) == ["data", "task", "task/nested"]
    assert groups["data"].options == {"digits": "Handwritten digits", "folder": ""}
    assert groups["data"].default == "folder"
    assert groups["task"].default == "detect"
    assert groups["task/nested"].default is None
    described = describe_config_groups(tmp_path)
    assert "   * folder" in described
    assert "     digits                 Handwritten digits" in described


def test_the_overrides_that_decide_when_training_stops_and_which_weights_start_it_are_listed() -> None:
    described = describe_config_groups()

    overrides = ("trainer.max_time=00:00:20:00", "early_stopping.patience=20", "model.weights=PATH", "model.weights=null")
    for override in (*overrides, "data.image_size=128"):
        assert override in described


def test_the_head_group_lists_every_packaged_head_config_of_the_kinds_without_a_yaml_file() -> None:
    from torchbricks.heads import packaged_head_configs

    groups = {group.name: group for group in read_config_groups()}

    assert sorted(groups["head"].options) == sorted(packaged_head_configs())
    assert groups["head"].options["image_classification"].startswith("a classification head (ClassificationTaskHead)")


def test_a_hydra_directive_is_not_shown_as_a_config_description() -> None:
    from torchbricks._cli_help import CONFIG_DIR, describe_config_groups

    described = describe_config_groups(CONFIG_DIR)

    assert "@package" not in described
    assert "image classification" in described  # task=classification's own first line


def test_what_the_help_says_of_the_tasks_default_weights_is_what_their_configs_hold() -> None:
    # It said "the dense tasks start from the shipped weights" after task=classification had started from them too.
    from torchbricks._cli_help import COMMON_OVERRIDES
    from torchbricks.configuration import compose_config

    tasks = next(group for group in read_config_groups() if group.name == "task").options
    shipped = [task for task in tasks if compose_config([f"task={task}", "data.root=x"]).model.weights == "auto"]
    said = dict(COMMON_OVERRIDES)["model.weights=null"]

    assert shipped == list(tasks)
    assert "every task starts from the shipped weights: auto" in said


def test_a_description_is_the_first_sentence_of_the_opening_comment_over_its_lines(tmp_path: Path) -> None:
    _write(
        tmp_path / "data" / "coco.yaml",
        "# COCO instances: root/val.json (otherwise val is also the test\n# split), relative to root. More.\n"
        "#   a list: not the description\nroot: x\n",
    )
    _write(tmp_path / "data" / "listed.yaml", "# Data in any of the layouts, named\n#   coco: root/train.json\nroot: y\n")

    options = read_config_groups(tmp_path)[0].options

    assert options["coco"] == "COCO instances: root/val.json (otherwise val is also the test split), relative to root"
    assert options["listed"] == "Data in any of the layouts, named"
