from __future__ import annotations

from pathlib import Path

import pytest

from torchbricks._experiment import (
    CONFIG_FILE,
    ExperimentExistsError,
    prepare_experiment_folder,
    resumed_config,
    trained_weights_digest,
)
from torchbricks.configuration import compose_config
from torchbricks.errors import BrickError, ConfigError


@pytest.fixture(autouse=True)
def _as_the_first_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)


def _config(tmp_path: Path, *overrides: str) -> object:
    return compose_config([f"experiment.path_experiments={tmp_path}", "experiment.name=run", *overrides])


def _saved_experiment(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / CONFIG_FILE).write_text("seed: 0\n")
    (folder / "experiment.json").write_text("{}")  # as written before it recorded the working directory
    (folder / "metrics.json").write_text("{}")
    return folder


def test_a_new_experiment_name_is_accepted_and_nothing_is_created(tmp_path: Path) -> None:
    assert prepare_experiment_folder(_config(tmp_path)) == tmp_path / "run"
    assert not (tmp_path / "run").exists()


def test_an_existing_experiment_is_refused_in_one_line_naming_resume_and_overwrite(tmp_path: Path) -> None:
    _saved_experiment(tmp_path)

    with pytest.raises(ExperimentExistsError) as raised:
        prepare_experiment_folder(_config(tmp_path))

    message = str(raised.value)
    assert isinstance(raised.value, BrickError)
    assert "\n" not in message
    assert "resume=true" in message
    assert "experiment.overwrite=true" in message
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_overwrite_empties_an_experiment_folder(tmp_path: Path) -> None:
    _saved_experiment(tmp_path)

    prepare_experiment_folder(_config(tmp_path, "experiment.overwrite=true"))

    assert not (tmp_path / "run").exists()


def test_overwrite_leaves_a_folder_that_is_not_an_experiment_alone(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "thesis.tex").write_text("precious")

    with pytest.raises(ConfigError, match="does not look like an experiment folder"):
        prepare_experiment_folder(_config(tmp_path, "experiment.overwrite=true"))

    assert (tmp_path / "run" / "thesis.tex").read_text() == "precious"


def test_other_processes_of_a_distributed_run_do_not_refuse_the_folder_the_first_one_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _saved_experiment(tmp_path)
    monkeypatch.setenv("LOCAL_RANK", "1")

    assert prepare_experiment_folder(_config(tmp_path)) == tmp_path / "run"


def test_resume_needs_a_last_checkpoint(tmp_path: Path) -> None:
    _saved_experiment(tmp_path)

    with pytest.raises(ConfigError, match=r"no checkpoints/last.ckpt to continue from"):
        prepare_experiment_folder(_config(tmp_path, "resume=true"))

    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert prepare_experiment_folder(_config(tmp_path, "resume=true")) == tmp_path / "run"


def test_resume_continues_with_the_saved_config_and_plain_overrides_on_top(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    saved = _config(tmp_path, "trainer.max_epochs=3", "+head@model.bricks.head2=classification")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / CONFIG_FILE).write_text(OmegaConf.to_yaml(saved))
    (tmp_path / "run" / "experiment.json").write_text("{}")
    overrides = [f"experiment.path_experiments={tmp_path}", "experiment.name=run", "resume=true", "trainer.max_epochs=5"]

    config = resumed_config(compose_config(overrides), overrides)

    assert config.resume is True
    assert config.trainer.max_epochs == 5
    assert "head2" in config.model.bricks  # the saved model, though the command did not repeat its override


@pytest.mark.parametrize("repeated", [[], ["experiment.overwrite=true"]], ids=["resume-only", "the-same-command"])
def test_a_run_started_with_overwrite_resumes_without_deleting_itself(tmp_path: Path, repeated: list[str]) -> None:
    from omegaconf import OmegaConf

    from torchbricks._experiment import check_experiment_folder

    started = ["experiment.overwrite=true", "trainer.max_epochs=3"]  # "or start it again", then stopped by Ctrl-C
    saved = _config(tmp_path, *started)
    saved.experiment.command_overrides = [f"experiment.path_experiments={tmp_path}", "experiment.name=run", *started]
    folder = _saved_experiment(tmp_path)
    (folder / CONFIG_FILE).write_text(OmegaConf.to_yaml(saved))
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"")
    overrides = [f"experiment.path_experiments={tmp_path}", "experiment.name=run", *repeated, "resume=true"]

    config = resumed_config(compose_config([o for o in overrides if "overwrite" not in o]), overrides)
    check_experiment_folder(config)

    assert config.resume is True
    assert config.experiment.overwrite is False
    assert prepare_experiment_folder(config) == folder
    assert (folder / "checkpoints" / "last.ckpt").is_file()


def test_resume_with_an_overwrite_the_run_was_not_started_with_is_refused(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    folder = _saved_experiment(tmp_path)
    (folder / CONFIG_FILE).write_text(OmegaConf.to_yaml(_config(tmp_path)))
    overrides = [f"experiment.path_experiments={tmp_path}", "experiment.name=run", "resume=true", "experiment.overwrite=true"]

    with pytest.raises(ConfigError, match=r"experiment\.overwrite=true deletes it: give one of them"):
        resumed_config(compose_config(overrides[:3]), overrides)


def test_resume_refuses_overrides_that_change_the_model(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / CONFIG_FILE).write_text("seed: 0\n")
    overrides = [
        f"experiment.path_experiments={tmp_path}",
        "experiment.name=run",
        "resume=true",
        "+head@model.bricks.head2=classification",
    ]

    with pytest.raises(ConfigError, match="adds or removes a part of them"):
        resumed_config(compose_config(overrides), overrides)


@pytest.mark.parametrize("override", ["optimizer=sgd_cosine", "loss_balancing=dwa", "missing_targets=skip"])
def test_resume_refuses_a_top_level_choice_naming_it_and_what_can_change(tmp_path: Path, override: str) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / CONFIG_FILE).write_text("seed: 0\n")
    overrides = [f"experiment.path_experiments={tmp_path}", "experiment.name=run", "resume=true", override]

    with pytest.raises(ConfigError, match=rf"with the '{override.split('=', maxsplit=1)[0]}' it was trained with.*'export_onnx'"):
        resumed_config(compose_config(overrides), overrides)


def test_resume_takes_the_job_keys_that_leave_the_checkpoint_alone(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / CONFIG_FILE).write_text("seed: 0\nexport_onnx: true\nn_visualized: 16\n")
    overrides = [
        f"experiment.path_experiments={tmp_path}",
        "experiment.name=run",
        "resume=true",
        "export_onnx=false",
        "n_visualized=4",
        "loss_weights.head/loss_ce=2",
    ]

    config = resumed_config(compose_config(overrides), overrides)

    assert (config.export_onnx, config.n_visualized) == (False, 4)


def test_resume_of_an_unknown_experiment_lists_the_experiments_there(tmp_path: Path) -> None:
    _saved_experiment(tmp_path)
    overrides = [f"experiment.path_experiments={tmp_path}", "experiment.name=rnu", "resume=true"]

    with pytest.raises(ConfigError, match=r"no experiment 'rnu' to continue .* Experiments there: \['run'\]"):
        resumed_config(compose_config(overrides), overrides)


def test_a_run_without_resume_keeps_its_config(tmp_path: Path) -> None:
    config = _config(tmp_path)

    assert resumed_config(config, []) is config


def _trained_in(project: Path, experiments: Path, *, recorded: bool = True) -> list[str]:
    """An experiment `run` in `experiments` whose training ran in `project` with `data.root=data/shapes` and a
    second source's root `data/more`; the locating overrides of its resume."""
    import json

    from omegaconf import OmegaConf

    folder = experiments / "run"
    folder.mkdir(parents=True)
    saved = {
        "seed": 0,
        "experiment": {"path_experiments": "runs", "name": "run", "command_overrides": ["data.root=data/shapes"]},
        "data": {"root": "data/shapes", "batch_size": 4, "sources": {"more": {"data_module": {"root": "data/more"}}}},
    }
    (folder / CONFIG_FILE).write_text(OmegaConf.to_yaml(OmegaConf.create(saved)))
    (folder / "experiment.json").write_text(json.dumps({"working_directory": str(project)} if recorded else {}))
    return [f"experiment.path_experiments={experiments}", "experiment.name=run", "resume=true"]


def test_resume_from_another_folder_reads_the_saved_data_roots_from_the_folder_training_ran_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    locate = _trained_in(project, tmp_path / "experiments")
    monkeypatch.chdir(elsewhere)

    config = resumed_config(compose_config(locate), locate)

    assert config.data.root == str(project / "data" / "shapes")
    assert config.data.sources.more.data_module.root == str(project / "data" / "more")
    assert config.experiment.path_experiments == str(tmp_path / "experiments")  # where it was found, not the saved `runs`
    # The same command the run began with: the saved root, from the folder training ran in.
    again = [*locate, "data.root=data/shapes"]
    assert resumed_config(compose_config(locate), again).data.root == str(project / "data" / "shapes")
    # A root this command gives is read from the current folder, as `evaluate` reads it.
    other = [*locate, "data.root=data/other", "data.sources.more.data_module.root=/abs/more"]
    config = resumed_config(compose_config(locate), other)  # composed as `train` does: the locating keys alone
    assert (config.data.root, config.data.sources.more.data_module.root) == ("data/other", "/abs/more")


def test_resume_from_the_folder_training_ran_in_keeps_the_saved_relative_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locate = _trained_in(tmp_path, tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)

    assert resumed_config(compose_config(locate), locate).data.root == "data/shapes"  # config.yaml stays as it was


@pytest.mark.parametrize("case", ["not recorded", "recorded folder gone"])
def test_resume_reads_the_data_roots_from_the_current_folder_without_a_recorded_folder_to_read_them_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    # an experiment written before experiment.json kept the folder, or a project moved or copied to another machine
    locate = _trained_in(tmp_path / "gone", tmp_path / "experiments", recorded=case == "recorded folder gone")
    monkeypatch.chdir(tmp_path)

    config = resumed_config(compose_config(locate), locate)

    assert (config.data.root, config.data.sources.more.data_module.root) == ("data/shapes", "data/more")


def test_a_resume_with_another_seed_keeps_the_digits_splits_it_trained_and_tested_on(tmp_path: Path) -> None:
    # README: seed is a key a resumed run can change, as it leaves the checkpoint alone. The digits' split seed was
    # `${seed}`, so resume=true seed=1 drew other training, validation and test splits halfway through the run: its test
    # images had been trained on, and the test metrics were silently too good.
    from omegaconf import OmegaConf

    folder = _saved_experiment(tmp_path)
    (folder / CONFIG_FILE).write_text(OmegaConf.to_yaml(_config(tmp_path)))
    overrides = [f"experiment.path_experiments={tmp_path}", "experiment.name=run", "resume=true"]

    config = resumed_config(compose_config(overrides), [*overrides, "seed=1"])

    assert config.seed == 1
    assert config.data.seed == _config(tmp_path).data.seed == 0
    assert _config(tmp_path, "seed=1").data.seed == 0  # and a new run with another seed is tested on the same split


@pytest.mark.parametrize("override", ["data.validation_fraction=0.3", "data.seed=4", "data.test_fraction=0.1"])
def test_a_resume_that_would_draw_other_splits_is_refused(tmp_path: Path, override: str) -> None:
    # Accepted as keys of a section, they drew other splits halfway through the run: its test split held trained images.
    from omegaconf import OmegaConf

    folder = _saved_experiment(tmp_path)
    (folder / CONFIG_FILE).write_text(OmegaConf.to_yaml(_config(tmp_path)))
    overrides = [f"experiment.path_experiments={tmp_path}", "experiment.name=run", "resume=true"]

    with pytest.raises(ConfigError, match=rf"the override '{override}' would draw others"):
        resumed_config(compose_config(overrides), [*overrides, override])
    key = override.partition("=")[0]
    saved_value = f"{key}={OmegaConf.select(_config(tmp_path), key)}"
    assert resumed_config(compose_config(overrides), [*overrides, saved_value]).resume is True  # the same value is no change


@pytest.mark.parametrize("name", ["0.10", "1e3", "true"])
def test_an_experiment_name_hydra_reads_as_a_number_or_a_boolean_is_refused(tmp_path: Path, name: str) -> None:
    # experiment.name=0.10 made the folder '0.1' (and true the folder 'True') without a word
    from torchbricks._experiment import check_experiment_folder

    with pytest.raises(ConfigError, match=r"'experiment.name' must be a folder name, got (float|bool) .*Quote it"):
        check_experiment_folder(_config(tmp_path, f"experiment.name={name}"))
    check_experiment_folder(_config(tmp_path, f"experiment.name='{name}'"))
    check_experiment_folder(_config(tmp_path, "experiment.name=10"))  # an int is the text typed


def test_an_experiment_saved_with_the_digits_split_following_the_seed_keeps_its_splits_when_resumed_with_another(
    tmp_path: Path,
) -> None:
    from omegaconf import OmegaConf

    saved = _config(tmp_path)
    saved.data.seed = "${seed}"  # as data/digits.yaml had it
    folder = _saved_experiment(tmp_path)
    (folder / CONFIG_FILE).write_text(OmegaConf.to_yaml(saved))
    overrides = [f"experiment.path_experiments={tmp_path}", "experiment.name=run", "resume=true"]

    config = resumed_config(compose_config(overrides), [*overrides, "seed=1"])

    assert (config.seed, config.data.seed) == (1, 0)


# One reader of experiment.json (read_experiment_description): every way the file can be unreadable is one library
# error naming the file (and the key), for each of its readers.


def _described(folder: Path, text: str | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text("seed: 0\n")
    if text is not None:
        (folder / "experiment.json").write_text(text)
    return folder


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (None, r"there is no such file: .* holds \['config.yaml'\]"),
        ('{"class_names": ["a", "b"], "image_si', "it is not JSON .*cut short"),
        ('["a", "b"]', "holds a JSON list, not the object"),
        ('{"class_name": ["a", "b"]}', r"has no key 'class_names'; keys there: \['class_name'\]. Did you mean 'class_name'\?"),
    ],
    ids=["missing", "truncated", "not an object", "key missing"],
)
def test_an_unreadable_experiment_json_is_one_library_error_naming_the_file_and_the_key(
    tmp_path: Path, text: str | None, match: str
) -> None:
    from torchbricks._experiment import read_experiment_description

    folder = _described(tmp_path / "run", text)

    with pytest.raises(ConfigError, match=match) as raised:
        read_experiment_description(folder, required=["class_names"], reader="resume=true")

    assert str(folder / "experiment.json") in str(raised.value)
    assert str(raised.value).startswith("resume=true reads")


def test_a_description_with_the_needed_keys_is_read_as_written_and_a_null_value_is_a_present_key(tmp_path: Path) -> None:
    from torchbricks._experiment import read_experiment_description

    folder = _described(tmp_path / "run", '{"class_names": null, "image_size": [32, 32]}')

    assert read_experiment_description(folder, required=["class_names"]) == {"class_names": None, "image_size": [32, 32]}


def test_resume_refuses_a_truncated_experiment_json_instead_of_reading_the_data_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # recorded_working_directory swallowed the JSON error: a resumed run started elsewhere read its relative data.root
    # from the current folder without a word (other data, or none).
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    locate = _trained_in(project, tmp_path / "experiments")
    (tmp_path / "experiments" / "run" / "experiment.json").write_text('{"working_directory": "' + str(project)[:5])
    monkeypatch.chdir(elsewhere)

    with pytest.raises(ConfigError, match=r"resume=true reads .*experiment.json', but it is not JSON"):
        resumed_config(compose_config(locate), locate)


@pytest.mark.parametrize(("chosen", "recorded"), [(["task=classification"], "classification"), ([], None)])
def test_experiment_json_records_the_task_the_run_was_composed_with(
    tmp_path: Path, chosen: list[str], recorded: str | None
) -> None:
    from torchbricks.trained_experiment import describe_experiment

    assert describe_experiment(_config(tmp_path, *chosen), object())["task"] == recorded


@pytest.mark.parametrize(
    ("trained", "named"),
    [
        (["task=classification"], "(task=classification, as its experiment.json records; its checkpoint holds"),
        ([], "(no task= (the default data and model), as its experiment.json records; its checkpoint holds"),
        (None, "which its experiment.json does not record: a torchbricks that did not record it trained it"),
    ],
)
def test_resume_refuses_another_task_naming_the_one_the_run_was_trained_with(
    tmp_path: Path, trained: list[str] | None, named: str
) -> None:
    import json

    from omegaconf import OmegaConf

    from torchbricks.trained_experiment import describe_experiment

    folder = _saved_experiment(tmp_path)
    config = _config(tmp_path, *(trained or []))
    (folder / CONFIG_FILE).write_text(OmegaConf.to_yaml(config))
    description = describe_experiment(config, object())
    if trained is None:  # as written before experiment.json recorded the task
        del description["task"]
    (folder / "experiment.json").write_text(json.dumps(description))
    overrides = [f"experiment.path_experiments={tmp_path}", "experiment.name=run", "resume=true", "task=detection"]

    with pytest.raises(ConfigError, match="with the 'task' it was trained with") as refused:
        resumed_config(compose_config(overrides[:3]), overrides)
    assert named in str(refused.value)
    assert "the override 'task=detection' would change it" in str(refused.value)


def test_the_trained_weights_digest_leaves_out_a_temporary_file_a_killed_save_left(tmp_path: Path) -> None:
    # predict --onnx refused a current export as "exported from other weights" once a kill mid-save left one behind
    (tmp_path / "bricks" / "head").mkdir(parents=True)
    (tmp_path / "bricks" / "backbone.pt").write_bytes(b"weights")
    (tmp_path / "bricks" / "head" / "classify.pt").write_bytes(b"more weights")
    before = trained_weights_digest(tmp_path)

    (tmp_path / "bricks" / "head" / ".classify.pt.0123abcd.tmp").write_bytes(b"half")

    assert trained_weights_digest(tmp_path) == before
    (tmp_path / "bricks" / "head" / "classify.pt").write_bytes(b"new weights")
    assert trained_weights_digest(tmp_path) != before


def test_resume_refuses_a_saved_config_cut_short_naming_it(tmp_path: Path) -> None:
    # YAML parses a cut config into a smaller one: the resumed run met missing keys, or trained another model
    from torchbricks.lightning.main_job import write_run_files

    folder = _saved_experiment(tmp_path)
    write_run_files(folder, _config(tmp_path), object())  # as `torchbricks train` writes it
    lines = (folder / CONFIG_FILE).read_text().splitlines(keepends=True)
    (folder / CONFIG_FILE).write_text("".join(lines[: len(lines) // 2]))
    overrides = [f"experiment.path_experiments={tmp_path}", "experiment.name=run", "resume=true"]

    with pytest.raises(ConfigError, match=r"resume=true: '.*run/config.yaml' is cut short"):
        resumed_config(compose_config(overrides), overrides)


def test_resume_reads_a_saved_config_written_without_the_end_line(tmp_path: Path) -> None:
    _saved_experiment(tmp_path)  # config.yaml as torchbricks wrote it before it ended it with a line
    overrides = [f"experiment.path_experiments={tmp_path}", "experiment.name=run", "resume=true"]

    assert resumed_config(compose_config(overrides), overrides).seed == 0
