"""Two machines, simulated on localhost: two `torchbricks train` commands of one process each, as on two nodes.

Each is started the way a user starts the job on each machine of a cluster without a scheduler: the same command,
with MASTER_ADDR/MASTER_PORT naming the first machine, NODE_RANK its own rank and WORLD_SIZE the process count;
Lightning joins them with gloo. The progress output is on, as shipped.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix

from torchbricks import Stage
from torchbricks.configuration import compose_config, create_brick_collection, instantiate_config

TIMEOUT = 600


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_two_nodes_of_one_process_report_the_metrics_one_process_computes_on_the_same_data(tmp_path: Path) -> None:
    overrides = [
        f"experiment.path_experiments={tmp_path}",
        "experiment.name=two_nodes",
        "trainer.num_nodes=2",
        "trainer.strategy=ddp",
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=4",
        "export_onnx=false",
    ]
    port = _free_port()
    nodes = []
    for node_rank in (0, 1):
        environment = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "NODE_RANK": str(node_rank),
            "WORLD_SIZE": "2",
        }
        log = open(tmp_path / f"node{node_rank}.txt", "wb")  # noqa: SIM115 (closed below, after the process ends)
        nodes.append(
            (
                subprocess.Popen(
                    [sys.executable, "-m", "torchbricks", "train", *overrides], stdout=log, stderr=log, env=environment
                ),
                log,
            )
        )
    try:
        statuses = [process.wait(timeout=TIMEOUT) for process, _ in nodes]
    finally:
        for process, log in nodes:
            if process.poll() is None:
                process.kill()  # a hang fails the test instead of blocking it
            log.close()
    outputs = [(tmp_path / f"node{rank}.txt").read_text()[-3000:] for rank in (0, 1)]
    assert statuses == [0, 0], outputs

    folder = tmp_path / "two_nodes"
    metrics = json.loads((folder / "metrics.json").read_text())
    # Both nodes trained: each saw half the batches of an epoch, in a world of two.
    assert "MEMBER: 1/2" in outputs[0]
    assert "MEMBER: 2/2" in outputs[1]

    # One process, the trained bricks, the same test split, and torchmetrics as the reference.
    config = compose_config(overrides)
    collection = create_brick_collection(config)
    collection.load_bricks(folder / "bricks")
    collection.eval()
    data = instantiate_config(config, "data")
    predictions, targets = [], []
    with torch.no_grad():
        for batch in data.test_dataloader():
            predictions.append(collection(batch, tags=Stage.EXPORT)["head/class_prediction"])
            targets.append(batch["targets"])
    expected = multiclass_confusion_matrix(torch.cat(predictions), torch.cat(targets), num_classes=10)

    assert int(expected.sum()) == 360
    assert metrics["test"]["head/confusion_matrix"] == expected.tolist()
    assert metrics["test"]["head/accuracy"] == pytest.approx(float(expected.trace() / expected.sum()), abs=1e-6)


def test_a_run_leaves_its_process_group_so_that_it_does_not_outlive_the_run(tmp_path: Path) -> None:
    import torch.distributed as dist

    from torchbricks.lightning.main_job import leave_process_group

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        leave_process_group()
        assert not dist.is_initialized()
        leave_process_group()  # one process, or already left: nothing to do
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
