from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import run_in_terminal, terminal_lines

from torchbricks import Stage
from torchbricks.configuration import compose_config, create_brick_collection, instantiate_config

DDP_JOB = Path(__file__).parent / "ddp_job.py"


def run_ddp_job(path_experiments: Path, devices: int, num_samples: int = 96, loaders: str = "plain") -> dict[str, Any]:
    completed = start_ddp_job(path_experiments, devices, num_samples, loaders)
    assert completed.returncode == 0, completed.stderr[-3000:]
    path = path_experiments / f"{loaders}_{num_samples}_devices_{devices}"
    return {file.stem: json.loads(file.read_text()) for file in path.glob("*.json")}


def start_ddp_job(path_experiments: Path, devices: int, num_samples: int, loaders: str) -> subprocess.CompletedProcess[str]:
    name = f"{loaders}_{num_samples}_devices_{devices}"
    arguments = [sys.executable, str(DDP_JOB), str(path_experiments), name, str(devices), str(num_samples), loaders]
    return run_command(arguments, timeout=600)


@pytest.mark.slow
def test_metrics_on_two_ddp_processes_agree_with_one_process(tmp_path: Path) -> None:
    one = run_ddp_job(tmp_path, devices=1)
    two = run_ddp_job(tmp_path, devices=2)

    assert (one["world_size"], two["world_size"]) == (1, 2)
    # Each of the two processes tests half of the 96 samples; torchmetrics gathers the states before computing.
    assert sum(map(sum, two["metrics_test"]["confusion_matrix"])) == 96
    assert two["metrics_test"]["confusion_matrix"] == one["metrics_test"]["confusion_matrix"]
    assert two["metrics_test"]["accuracy"] == pytest.approx(one["metrics_test"]["accuracy"])
    # Training ran on both processes and validation metrics were synchronised too.
    assert sum(map(sum, two["metrics_validation"]["confusion_matrix"])) == 96


@pytest.mark.slow
@pytest.mark.parametrize("loaders", ["unpadded", "datamodule"])
def test_an_odd_number_of_samples_on_two_processes_is_counted_once(tmp_path: Path, loaders: str) -> None:
    # 95 samples on 2 processes: Lightning's DistributedSampler would evaluate one of them twice (96 counted).
    one = run_ddp_job(tmp_path, devices=1, num_samples=95, loaders=loaders)
    two = run_ddp_job(tmp_path, devices=2, num_samples=95, loaders=loaders)

    for split in ("test", "validation"):
        assert sum(map(sum, two[f"metrics_{split}"]["confusion_matrix"])) == 95, split
    assert two["metrics_test"]["confusion_matrix"] == one["metrics_test"]["confusion_matrix"]
    assert two["metrics_test"]["accuracy"] == pytest.approx(one["metrics_test"]["accuracy"])


@pytest.mark.slow
def test_a_loader_that_would_repeat_samples_on_two_processes_fails_loudly(tmp_path: Path) -> None:
    completed = start_ddp_job(tmp_path, devices=2, num_samples=95, loaders="plain")

    assert completed.returncode != 0
    assert "DataError: The test loader 0 has 95 samples on 2 processes" in completed.stderr
    assert "repeats 1 of them" in completed.stderr
    assert "UnpaddedDistributedSampler" in completed.stderr
    assert not (tmp_path / "plain_95_devices_2" / "metrics_test.json").exists()  # no figure was written


def run_command(arguments: list[str], timeout: float, terminal: bool = False) -> subprocess.CompletedProcess[str]:
    """Runs a command in its own process group, killing the whole group (DDP's other ranks too) if it outlives `timeout`.

    A deadlocked DDP job ignores SIGTERM and its rank-1 process is a child of rank 0, so `subprocess.run(timeout=...)`
    alone would leave it running; the test fails instead of hanging. With `terminal`, standard output and error are
    a pseudo-terminal, as in a user's shell (so Lightning draws its own progress bar); both arrive in `stdout`.
    """
    if not terminal:
        with subprocess.Popen(
            arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                stdout, stderr = process.communicate()
                pytest.fail(f"{' '.join(arguments)} did not finish in {timeout} s (a deadlock?). stderr:\n{stderr[-3000:]}")
        return subprocess.CompletedProcess(arguments, process.returncode, stdout, stderr)

    status, output = run_in_terminal(arguments, timeout)
    return subprocess.CompletedProcess(arguments, status, output, "")


def evaluate_in_one_process(config: Any, path_bricks: Path, split: str) -> dict[str, Any]:
    """The trained bricks run over a whole split in this process; accuracy, confusion matrix and loss by numpy."""
    collection = create_brick_collection(config)
    collection.load_bricks(path_bricks)
    collection.eval()
    data = instantiate_config(config, "data")
    data.setup("test")
    dataset = data.datasets[split]
    with torch.no_grad():
        logits = collection({"raw": dataset.tensors["raw"]}, tags=Stage.INFERENCE)["head/logits"].double().numpy()
    targets = dataset.tensors["targets"].numpy()
    log_probabilities = logits - logits.max(1, keepdims=True)
    log_probabilities -= np.log(np.exp(log_probabilities).sum(1, keepdims=True))
    confusion = np.zeros((logits.shape[1], logits.shape[1]), dtype=np.int64)
    np.add.at(confusion, (targets, logits.argmax(1)), 1)
    return {
        "accuracy": float((logits.argmax(1) == targets).mean()),
        "confusion_matrix": confusion.tolist(),
        "loss": float(-log_probabilities[np.arange(len(targets)), targets].mean()),
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("terminal", "averaging"),
    [(True, []), (False, []), (False, ["ema_decay=0.9"])],
    ids=["in-a-terminal", "redirected", "redirected-moving-average"],
)
def test_the_readme_two_process_command_finishes_with_the_packaged_config_and_synchronised_metrics(
    tmp_path: Path, terminal: bool, averaging: list[str]
) -> None:
    # As the README runs it: the packaged config as shipped (progress bar on), 2 processes (gloo on the CPU), in a
    # terminal (Lightning's progress bar, which deadlocked) and redirected to a file (one line per epoch); and with
    # a moving average of the weights, which each process keeps and which is validated, tested and kept instead.
    overrides = [
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.max_epochs=2",
        f"experiment.path_experiments={tmp_path}",
        *averaging,
    ]
    command = [str(Path(sys.executable).parent / "torchbricks"), "train", *overrides, "experiment.name=ddp"]

    completed = run_command(command, timeout=480, terminal=terminal)

    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-3000:]
    assert ("Epoch 2/2: 100%" if terminal else "epoch 2/2 ") in output  # the progress bar was on
    if terminal:  # one bar, the first process's, and the run's summary once
        lines = terminal_lines(output)
        assert sum(line.startswith("Epoch 2/2: 100%") for line in lines) == 1, lines
        assert sum(line.startswith("Experiment folder: ") for line in lines) == 1, lines
    assert len(re.findall(r"note: training on 2 processes, the model's \d+ BatchNorm layers normalise each", output)) == 1
    # Lightning's lines that no GPU or TPU is there and that it loads the training loader to count the steps, and its
    # table of the test values: the summary, printed once, says the test loss with the metrics
    for noise in ("GPU available: False", "TPU available: False", "to estimate number of stepping batches", "Test metric"):
        assert noise not in output, output[-3000:]
    assert len(re.findall(r"^  test/loss: \d+\.\d{4}\r?$", output, re.MULTILINE)) == 1, output[-3000:]
    folder = tmp_path / "ddp"
    metrics = json.loads((folder / "metrics.json").read_text())
    log = list(csv.DictReader((folder / "logs" / "metrics.csv").open()))
    test_loss = next(float(row["test/loss"]) for row in log if row.get("test/loss"))
    assert f"  test/loss: {test_loss:.4f}" in output, output[-3000:]
    last_validation_loss = [float(row["validation/loss"]) for row in log if row.get("validation/loss")][-1]
    config = compose_config(overrides)
    # Each process saw half of each split: the values cover both halves, as one process computes them on the whole.
    for split, loss in (("test", test_loss), ("validation", last_validation_loss)):
        reference = evaluate_in_one_process(config, folder / "bricks", split)
        assert metrics[split]["head/confusion_matrix"] == reference["confusion_matrix"], split
        assert metrics[split]["head/accuracy"] == pytest.approx(reference["accuracy"], abs=1e-6), split
        assert loss == pytest.approx(reference["loss"], rel=1e-4), split


BALANCING_JOB = Path(__file__).parent / "ddp_balancing_job.py"


def run_balancing_job(path: Path, devices: int, timeout: float = 300, **options: Any) -> list[dict[str, Any]]:
    """What each process of `ddp_balancing_job.py` kept: its weights after training and the values it logged."""
    out = path / f"devices_{devices}{'_compiled' if options.get('compile') else ''}"
    out.mkdir()
    arguments = [sys.executable, str(BALANCING_JOB), str(out), json.dumps({"devices": devices, **options})]
    completed = run_command(arguments, timeout=timeout)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return [torch.load(file, weights_only=True) for file in sorted(out.glob("rank*.pt"))]


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        {"balancer": "pcgrad", "accumulate": 2},
        {"balancer": "uncertainty", "ema_decay": 0.9},
        {"balancer": "dwa", "epochs": 3},
        {"balancer": "fixed", "class_weights": [0.3, 1.0, 3.0]},
    ],
    ids=["pcgrad-accumulating", "uncertainty-moving-average", "dwa", "class-weights"],
)
def test_two_processes_train_and_log_what_one_process_does_on_their_batches_together(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    # Each step's batch of 8 is dealt out to the two processes (4 each): the weights after training, the losses
    # logged per step and per epoch, the balancer's values and the validation and test metrics must be those of one
    # process training on the batches of 8. PCGrad's surgery is not linear: projecting each process's gradients and
    # averaging the results (or leaving DDP's reducer waiting for the shared parameters' gradients) differs.
    (one,) = run_balancing_job(tmp_path, devices=1, **options)
    first, second = run_balancing_job(tmp_path, devices=2, **options)

    assert (one["world_size"], first["world_size"]) == (1, 2)
    for name, value in one["state_dict"].items():
        torch.testing.assert_close(first["state_dict"][name], value, rtol=1e-5, atol=1e-6, msg=name)
        assert torch.equal(first["state_dict"][name], second["state_dict"][name]), name
    for kind in ("fitted", "tested"):
        assert sorted(first[kind]) == sorted(one[kind])
        for name, value in one[kind].items():
            if "class_weights" in options and name.startswith(("validation/loss", "test/loss")):
                continue  # a mean of per-batch ratios (LossMeans), and the batches of 4 are not those of 8
            assert first[kind][name] == pytest.approx(value, rel=1e-5, abs=1e-6), f"{kind} {name}"
    if options["balancer"] == "pcgrad":
        assert one["fitted"]["train/balancing/pcgrad/conflicting_fraction"] > 0  # the surgery acted


@pytest.mark.slow
def test_the_packaged_heads_train_and_log_on_two_processes_what_one_process_does_on_their_batches_together(
    tmp_path: Path,
) -> None:
    # The packaged detection, points, multi-label and segmentation heads divide their losses within the batch by
    # its boxes, points, known labels and unignored pixels, which vary from image to image. Trained on two processes
    # (batches of 4 each), the weights must be one process's trained on the batches of 8 together; validated and
    # tested in batches of 3 on each process (the last one of 1), the epoch losses must be the whole split's, as
    # one process computes them in batches of 8.
    options = {"balancer": "fixed", "heads": "dense", "lr": 0.01}
    (one,) = run_balancing_job(tmp_path, devices=1, **options)
    first, second = run_balancing_job(tmp_path, devices=2, eval_batch_size=3, **options)

    assert (one["world_size"], first["world_size"]) == (1, 2)
    for name, value in one["state_dict"].items():
        torch.testing.assert_close(first["state_dict"][name], value, rtol=1e-5, atol=1e-6, msg=name)
        assert torch.equal(first["state_dict"][name], second["state_dict"][name]), name
    assert "validation/losses/detection/loss_box" in one["fitted"]
    for kind in ("fitted", "tested"):
        assert sorted(first[kind]) == sorted(one[kind])
        for name, value in one[kind].items():
            assert first[kind][name] == pytest.approx(value, rel=1e-5, abs=1e-6), f"{kind} {name}"


@pytest.mark.slow
def test_compiled_stages_on_two_processes_train_the_weights_of_eager_ones_and_of_one_process(tmp_path: Path) -> None:
    # The packaged dense heads divide a training step's losses by the boxes, points, known labels and unignored pixels
    # of every process's batch, one collective each. Compiled (compile=true), that collective was left out of the
    # traced graph and each process divided by its own batch's count: the detection heatmap's bias ended 0.0023 away
    # from eager DDP's after the 8 steps of two epochs (train/loss 13.059 against 13.032), without a word.
    options = {"balancer": "fixed", "heads": "dense", "lr": 0.01, "epochs": 1}
    (one,) = run_balancing_job(tmp_path, devices=1, **options)
    eager, _ = run_balancing_job(tmp_path, devices=2, **options)
    first, second = run_balancing_job(tmp_path, devices=2, compile=True, timeout=900, **options)

    assert first["world_size"] == 2
    for name, value in one["state_dict"].items():
        torch.testing.assert_close(first["state_dict"][name], value, rtol=1e-5, atol=1e-6, msg=name)
        torch.testing.assert_close(first["state_dict"][name], eager["state_dict"][name], rtol=1e-5, atol=1e-6, msg=name)
        assert torch.equal(first["state_dict"][name], second["state_dict"][name]), name
    assert not torch.equal(one["state_dict"]["brick_collection.detection.detect.model.heatmap.bias"], torch.zeros(2))
    for name, value in one["fitted"].items():
        assert first["fitted"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


@pytest.mark.slow
def test_a_training_epoch_loss_is_the_whole_split_loss_whatever_the_batch_size_and_the_processes(tmp_path: Path) -> None:
    # With the weights kept (lr 0), a training epoch sees the split at one set of weights, so its loss is the whole
    # split's, as validation's is: one process in batches of 8 and two processes in batches of 3 (the last of 1) must
    # agree, and agree with the validation epoch of the same weights. The training epoch was the mean of the steps'
    # ratios: points' heatmap loss 4.4470 in batches of 3 on two processes, 4.4401 in batches of 8 on one, 4.4405 the
    # split's (presence 0.7173, 0.7286, 0.7283).
    options = {"balancer": "fixed", "heads": "dense", "lr": 0.0, "epochs": 1}
    (one,) = run_balancing_job(tmp_path, devices=1, **options)
    first, _ = run_balancing_job(tmp_path, devices=2, batch_size=6, **options)

    losses = [name.removeprefix("validation/") for name in one["fitted"] if name.startswith("validation/loss")]
    assert "losses/points/loss_heatmap" in losses
    for name in losses:
        for run in (one, first):
            trained = run["fitted"][f"train/{name}_epoch"]
            assert trained == pytest.approx(run["fitted"][f"validation/{name}"], rel=1e-5), name
        assert first["fitted"][f"train/{name}_epoch"] == pytest.approx(one["fitted"][f"train/{name}_epoch"], rel=1e-5), name


@pytest.mark.slow
def test_a_two_process_run_resumed_from_its_checkpoint_continues_every_state_as_the_uninterrupted_run(tmp_path: Path) -> None:
    # Uncertainty weights, a moving average, a learning rate schedule and early stopping whose patience ran out at
    # epoch 3 (the augmentation turned off) and runs out again at epoch 5: resumed after epoch 3, every one of them
    # must go on as in the run that was never interrupted, on both processes.
    job = Path(__file__).parent / "ddp_resume_job.py"

    def run(name: str, max_epochs: int, *checkpoint: str) -> list[dict[str, Any]]:
        (tmp_path / name).mkdir()
        completed = run_command([sys.executable, str(job), str(tmp_path / name), str(max_epochs), *checkpoint], timeout=300)
        assert completed.returncode == 0, completed.stderr[-3000:]
        return [torch.load(file, weights_only=True) for file in sorted((tmp_path / name).glob("rank*.pt"))]

    whole = run("whole", 6)
    interrupted = run("interrupted", 3)
    resumed = run("resumed", 6, str(tmp_path / "interrupted" / "checkpoints" / "last.ckpt"))

    assert interrupted[0]["early_stopping"]["augmentations_off_epoch"] == 3  # the checkpoint is in the last phase
    assert whole[0]["early_stopping"]["stopped_epoch"] == 4  # and the whole run stopped in it, at epoch 5
    for expected, actual in zip(whole, resumed, strict=True):
        assert actual["epochs"] == expected["epochs"] == 5
        assert actual["early_stopping"] == expected["early_stopping"]
        assert actual["augmentations_on"] is expected["augmentations_on"] is False
        assert actual["lr"] == pytest.approx(expected["lr"])
        for part in ("state_dict", "average"):  # the module's (with the balancer's weights) and the moving average
            for name, value in expected[part].items():
                torch.testing.assert_close(actual[part][name], value, msg=f"{part} {name}")
        assert actual["logged"] == pytest.approx(expected["logged"])


@pytest.mark.slow
def test_a_two_process_command_killed_after_a_checkpoint_resumes_to_the_uninterrupted_runs_values(tmp_path: Path) -> None:
    # As a user runs it: the packaged config on two processes with learned loss weights and a moving average of the
    # weights, killed (both processes, at once) once an epoch's checkpoint is written, then `resume=true`.
    train = [str(Path(sys.executable).parent / "torchbricks"), "train", f"experiment.path_experiments={tmp_path}"]
    overrides = [
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.max_epochs=3",
        "+trainer.limit_train_batches=6",
        "loss_balancing=uncertainty",
        "ema_decay=0.9",
        "export_onnx=false",
        "n_visualized=0",
    ]
    whole = run_command([*train, *overrides, "experiment.name=whole"], timeout=480)
    assert whole.returncode == 0, whole.stderr[-3000:]
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    # Lightning writes a checkpoint to a temporary file and moves it in place, so last.ckpt is whole once it exists.
    # It is killed at once: the two epochs left take less than a second here (a pause of one second after the first
    # checkpoint let the run finish). The run is niced, so this poll wakes within its 10 ms however busy the CPU is.
    command = [*train, *overrides, "experiment.name=killed"]
    with subprocess.Popen(["nice", "-n", "10", *command], start_new_session=True, **quiet) as killed:
        deadline = time.monotonic() + 480
        while not last.exists() and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(killed.pid, signal.SIGKILL)
    assert last.exists()
    assert not (tmp_path / "killed" / "metrics.json").exists()  # it really was interrupted

    resumed = run_command([*train, "experiment.name=killed", "resume=true"], timeout=480)

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, actual = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("whole", "killed"))
    assert actual["epochs"] == expected["epochs"] == 3
    for stage in ("train", "validation", "test"):
        assert actual[stage]["head/confusion_matrix"] == expected[stage]["head/confusion_matrix"], stage
        assert actual[stage]["head/accuracy"] == pytest.approx(expected[stage]["head/accuracy"], abs=1e-6), stage
    history, expected_history = (json.loads((tmp_path / name / "history.json").read_text()) for name in ("killed", "whole"))
    assert [record["epoch"] for record in history] == [0, 1, 2]
    assert "train/balancing/weights/head/loss_ce" in history[-1]  # the learned weight, logged every epoch
    for record, expected_record in zip(history, expected_history, strict=True):
        assert record == pytest.approx(expected_record, abs=1e-6)
