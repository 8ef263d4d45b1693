from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

from bench_suite import REFERENCE_CONFIG, Row, configurations, main, markdown, max_time, merge, parse_arguments, set_targets


def test_the_budget_becomes_lightnings_max_time() -> None:
    assert max_time(4) == "00:00:04:00"
    assert max_time(0.05) == "00:00:00:03"
    assert max_time(90.5) == "00:01:30:30"
    assert max_time(0.001) == "00:00:00:01"


@pytest.mark.parametrize("task", ["classification", "segmentation", "detection", "multitask"])
def test_the_default_budget_is_the_packaged_training_time(task: str) -> None:
    # the one command measures what a user gets: ours and the reference train as long as the packaged recipe does
    from torchbricks.configuration import compose_config
    from torchbricks.lightning.task_resolvers import register_resolvers

    register_resolvers()
    config = compose_config([f"task={task}", "data.root=unused"])

    assert max_time(parse_arguments([]).budget_minutes) == config.trainer.max_time


def test_targets_are_the_reference_less_0_02_the_held_out_floor_and_the_single_task_less_0_05() -> None:
    rows = [
        Row("classification", "shapes", False, "accuracy", 0.90, 60.0, reference=0.93),
        Row("classification", "lookalike", True, "accuracy", 0.96, 60.0, reference=0.90),
        Row("segmentation", "lookalike", True, "mIoU", 0.80, 60.0, reference=0.85),
        Row("detection", "lookalike", True, "mAP@0.5", 0.72, 60.0, reference=0.60),
        Row("multitask", "lookalike", True, "mAP@0.5", 0.71, 60.0),
        Row("multitask", "lookalike", True, "mIoU", 0.70, 60.0),
        Row("classification", "photo_patches", True, "accuracy", 0.50, 60.0, reference=0.51),
    ]
    set_targets(rows)

    assert [row.target for row in rows] == pytest.approx([0.91, 0.95, 0.83, 0.70, 0.70, 0.75, 0.49])
    assert [row.met for row in rows] == [False, True, False, True, True, False, True]
    assert rows[5].target_text == ">= single task - 0.05, 0.75 = 0.750"  # 0.80 - 0.05 below the held-out floor
    assert rows[6].target_text == ">= ref - 0.02 = 0.490"  # real photos: no absolute floor


def test_each_overrides_option_is_one_configuration_labelled_by_its_overrides() -> None:
    arguments = parse_arguments(["--overrides", "", "--overrides", "model.backbone=resnet18 data.image_size=96"])
    assert configurations(arguments) == [
        ("defaults", []),
        ("model.backbone-resnet18_data.image_size-96", ["model.backbone=resnet18", "data.image_size=96"]),
    ]
    assert configurations(parse_arguments([])) == [("defaults", [])]
    named = parse_arguments(["--overrides", "model.backbone=resnet18", "--label", "r18"])
    assert configurations(named) == [("r18", ["model.backbone=resnet18"])]


def test_the_table_has_one_line_per_row_and_shows_failures() -> None:
    rows = [
        Row(
            "classification",
            "digits",
            False,
            "accuracy",
            0.97,
            61.2,
            12,
            reference=0.95,
            reference_seconds=62.0,
            reference_epochs=8.5,
        ),
        Row("detection", "lookalike", True, "mAP@0.5", None, 20.0, error="torchbricks: error: boom"),
    ]
    set_targets(rows)
    lines = markdown(rows).splitlines()

    assert len(lines) == 4
    assert lines[2].startswith("| classification | digits | defaults | accuracy | 0.970 | 61 | 12 | 0.950 | 62 | 8.5 | +0.020 |")
    assert "| detection | lookalike (held out) | defaults | mAP@0.5 | failed: torchbricks: error: boom |" in lines[3]


def test_merging_puts_each_reference_beside_the_runs_of_its_task_and_set_and_recomputes_targets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import asdict

    ours = [
        Row("classification", "shapes", False, "accuracy", 0.97, 200.0),
        Row("detection", "lookalike", True, "mAP@0.5", 0.60, 200.0),
        Row("multitask", "lookalike", True, "mAP@0.5", 0.58, 200.0),
    ]
    reference = REFERENCE_CONFIG
    references = [
        Row("classification", "shapes", False, "accuracy", None, 0, reference=0.98, reference_seconds=241, config=reference),
        Row("detection", "lookalike", True, "mAP@0.5", None, 0, reference=0.50, reference_epochs=9.0, config=reference),
    ]
    files = []
    for index, rows in enumerate([ours, references]):
        files.append(tmp_path / f"{index}.json")
        files[-1].write_text(json.dumps({"rows": [asdict(row) for row in rows]}))

    merged = merge([json.loads(path.read_text()) for path in files])

    assert [(row.task, row.reference) for row in merged] == [("classification", 0.98), ("detection", 0.50), ("multitask", None)]
    assert (merged[0].reference_seconds, merged[1].reference_epochs) == (241, 9.0)
    # 0.97 >= 0.98 - 0.02; detection above its reference but below the floor; multitask: max(0.60 - 0.05, floor 0.70)
    assert [(row.target, row.met) for row in merged] == [(pytest.approx(0.96), True), (0.70, False), (0.70, False)]
    assert main(["--merge", *map(str, files)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2 + len(ours)


@pytest.mark.slow
def test_the_suite_runs_the_job_and_the_reference_end_to_end_on_a_micro_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = tmp_path / "result.json"
    arguments = ["--micro", "--tasks", "classification", "--sets", "lookalike", "--budget-minutes", "0.05"]
    arguments += ["--overrides", "trainer.max_epochs=1", "--cache", str(tmp_path / "data"), "--out", str(tmp_path / "runs")]

    assert main([*arguments, "--json", str(result)]) == 0

    table = capsys.readouterr().out
    (row,) = json.loads(result.read_text())["rows"]
    metrics = json.loads((Path(row["experiment"]) / "metrics.json").read_text())
    assert row["ours"] == metrics["test"]["classification/accuracy"]  # the figure is the job's own, from its files
    assert row["ours_epochs"] == metrics["epochs"] == 1
    assert 0.0 <= row["reference"] <= 1.0
    assert row["reference_seconds"] > 0
    assert "trainer.max_time=00:00:00:03" in Path(row["log"]).read_text().splitlines()[0]
    assert f"| classification | lookalike (held out) | trainer.max_epochs-1 | accuracy | {row['ours']:.3f} |" in table
    assert (tmp_path / "data" / "lookalike-micro" / "classification" / "test").is_dir()


def test_a_set_of_large_photographs_is_tiled_for_the_job_and_the_reference_which_gets_its_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench_suite
    import suite_reference

    calls: dict[str, object] = {}

    def fake_ours(task: str, root: Path, out: Path, name: str, budget: float, overrides: list[str]) -> tuple:
        calls["overrides"] = overrides
        return {"test": {"detection/map_50": 0.5}, "epochs": 3}, 1.0, tmp_path / "log"

    def fake_reference(
        task: str, root: Path, budget: float, seed: int = 0, tile_size: int | None = None
    ) -> suite_reference.ReferenceResult:
        calls["tile_size"], calls["seed"] = tile_size, seed
        return suite_reference.ReferenceResult(0.4, 1.0, 1.0, 1, 1.0)

    monkeypatch.setattr(bench_suite, "write_set", lambda cache, name, micro=False: tmp_path)
    monkeypatch.setattr(bench_suite, "run_ours", fake_ours)
    monkeypatch.setattr(suite_reference, "train_reference", fake_reference)

    arguments = ["--tasks", "detection", "--sets", "trees", "--overrides", "model.hidden_channels=16", "--reference-seed", "2"]
    assert main(arguments) == 0
    assert calls == {"tile_size": 192, "seed": 2, "overrides": ["data.tile_size=192", "model.hidden_channels=16"]}
