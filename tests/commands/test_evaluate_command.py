"""`torchbricks evaluate`: split and override mistakes are one error line (exit 2); evaluations are in test_evaluate.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from torchbricks.__main__ import main


def test_a_misspelt_split_is_refused_with_the_close_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path), "data.root=x", "split=tset"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("torchbricks: error: split must be one of ")
    assert "got 'tset'" in error
    assert "'test'" in error.rpartition("?")[0].rpartition("mean")[2]


@pytest.mark.parametrize("argument", ["spilt=all", "splits=val", "Split=test"])
def test_a_misspelt_split_key_is_refused_with_the_close_match(
    tmp_path: Path, argument: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # sent on as an override of the experiment's config, whose keys (which lack `split`) matched nothing
    assert main(["evaluate", str(tmp_path), "data.root=x", argument]) == 2
    error = capsys.readouterr().err
    assert error.startswith("torchbricks: error: evaluate takes split=val|test|all and overrides of the experiment's")
    assert error.rstrip().endswith(f"got {argument!r}. Did you mean 'split'?")


def test_an_override_with_a_misspelt_section_names_the_close_match_of_that_section() -> None:
    from omegaconf import OmegaConf

    from torchbricks.errors import ConfigError
    from torchbricks.evaluate import _with_overrides

    config = OmegaConf.create({"data": {"root": "a", "batch_size": 2}, "trainer": {"precision": 32}})
    # the message named 'dat.root' as missing and suggested nothing, though the config has `data`
    with pytest.raises(ConfigError, match=r"no key 'dat\.root'; the top level has \['data', 'trainer'\]\. Did you mean 'data'\?"):
        _with_overrides(config, ["dat.root=x"])
    with pytest.raises(ConfigError, match=r"no key 'data\.rot'; data has \['root', 'batch_size'\]\. Did you mean 'root'\?"):
        _with_overrides(config, ["data.rot=x"])


def test_a_folder_that_is_not_an_experiment_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path), "split=val"]) == 2
    assert f"{str(tmp_path)!r} is not a trained experiment folder" in capsys.readouterr().err
    assert not (tmp_path / "evaluation.json").exists()


@pytest.mark.slow
def test_an_experiment_trained_on_a_relative_data_root_is_evaluated_and_exported_from_another_folder(
    shapes_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import shutil

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    shutil.copytree(shapes_root / "classification", project / "data" / "classification")
    elsewhere.mkdir()
    monkeypatch.chdir(project)
    trained = main(
        [
            "train",
            "task=classification",
            "data.root=data/classification",  # relative to the folder training runs in
            "experiment.path_experiments=experiments",
            "experiment.name=run",
            "trainer.max_epochs=1",
            "data.image_size=32",
            "data.batch_size=4",
            "data.num_workers=0",
            "n_visualized=0",
            "export_onnx=false",
        ]
    )
    assert trained == 0
    monkeypatch.chdir(elsewhere)
    experiment = Path("..") / "project" / "experiments" / "run"

    assert main(["evaluate", str(experiment), "--out", "evaluation.json"]) == 0
    evaluation = json.loads((elsewhere / "evaluation.json").read_text())
    assert evaluation["data_root"] == str(project / "data" / "classification")
    tested = json.loads((experiment / "metrics.json").read_text())["test"]
    assert evaluation["metrics"]["classification/accuracy"] == pytest.approx(tested["classification/accuracy"])
    assert main(["export", str(experiment), "--quantize", "int8", "--out", "int8.onnx"]) == 0  # calibrated on its data
    assert (
        str(project / "data" / "classification")
        in json.loads((elsewhere / "int8.onnx.json").read_text())["quantization"]["evaluated_on"]
    )

    # An experiment that does not record the folder training ran in: the error says what to pass.
    description = json.loads((experiment / "experiment.json").read_text())
    del description["working_directory"]
    (experiment / "experiment.json").write_text(json.dumps(description))
    capsys.readouterr()
    assert main(["evaluate", str(experiment)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "reads its data from 'data/classification', relative to the folder `torchbricks train` ran in" in error
    assert "pass data.root=<the data folder>" in error
    assert main(["evaluate", str(experiment), f"data.root={project / 'data' / 'classification'}", "--out", "again.json"]) == 0


def test_an_experiment_whose_data_is_nowhere_says_to_pass_data_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from helpers import experiment_trained_in

    experiment = experiment_trained_in(tmp_path / "experiments" / "run", tmp_path / "gone")
    monkeypatch.chdir(tmp_path)

    assert main(["evaluate", str(experiment)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"relative to the folder `torchbricks train` ran in, {str(tmp_path / 'gone')!r}, which no longer exists" in error
    assert error.rstrip().endswith("pass data.root=<the data folder>.")


@pytest.mark.slow
def test_evaluate_names_every_file_it_cannot_read_before_computing_anything(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # evaluate stopped at the first bad file a loader reached, naming only it, after evaluating what came before
    import shutil

    folder = trained_experiment("classification")
    data = Path(shutil.copytree(shapes_root / "classification", tmp_path / "data"))
    validation = sorted((data / "val").glob("*/*.png"))
    cut = [validation[0], validation[-1], *sorted((data / "train").glob("*/*.png"))[:5]]
    for path in cut:  # an interrupted copy: the first half of each file
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    out = tmp_path / "evaluation.json"

    assert main(["evaluate", str(folder), f"data.root={data}", "split=test", "--out", str(out)]) != 0
    error = capsys.readouterr().err
    assert "2 files of " + repr(str(data)) + " cannot be read as evaluation reads them (found before evaluation" in error
    assert all(str(path) in error for path in cut[:2])
    assert str(cut[2]) not in error  # a training image: not of the evaluated split
    assert not out.exists()
    assert main(["evaluate", str(folder), f"data.root={data}", "split=all", "--out", str(out)]) != 0
    error = capsys.readouterr().err
    assert "7 files of" in error
    assert "; and 2 more" in error
    assert not out.exists()


@pytest.mark.slow
def test_evaluate_says_which_images_are_turned_transparent_or_converted_as_training_says_it(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # train noted the images an EXIF orientation turns at its start; evaluate, reading them the same way, said nothing
    import shutil

    from colour_profiles import icc_profile
    from PIL import Image

    from torchbricks.lightning.image_datamodules import ImageFolderDataModule

    folder = trained_experiment("classification")
    data = Path(shutil.copytree(shapes_root / "classification", tmp_path / "data"))
    first, second, third = sorted((data / "val").glob("*/*.png"))[:3]  # the test split: no test folder
    exif = Image.Exif()
    exif[0x0112] = 3  # a half turn
    with Image.open(first) as picture:
        picture.convert("RGB").rotate(180).save(first.with_suffix(".jpg"), exif=exif)
    first.unlink()
    with Image.open(second) as picture:
        empty_alpha = picture.convert("RGBA")
    empty_alpha.putalpha(0)
    empty_alpha.save(second)
    with Image.open(third) as picture:
        picture.convert("RGB").save(third, icc_profile=icc_profile("adobe-rgb"))
    ImageFolderDataModule(data, image_size=16, batch_size=2, num_workers=0).check_files()
    said_by_training = [line for line in capsys.readouterr().err.splitlines() if line.startswith("torchbricks: note:")]

    assert main(["evaluate", str(folder), f"data.root={data}", "split=test", "--out", str(tmp_path / "e.json")]) == 0

    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("torchbricks: note:")]
    assert said == said_by_training
    assert [note.split(") ", 1)[1][:22] for note in said] == [
        "carries an EXIF orient",
        "is transparent everywh",
        "carries a colour profi",
    ]
