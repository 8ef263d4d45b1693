from __future__ import annotations

import sys
from pathlib import Path

TESTS_DIR = Path(__file__).parent
sys.path.insert(0, str(TESTS_DIR))  # the spec imports its helpers as `utils_testing.*`


# --- tiny trained experiments, one per task, shared by the predict and evaluate tests ---------------------------------

import os  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _torch_threads_as_they_were() -> Iterator[None]:
    """Every test leaves torch's thread count as it found it (torch's default when it was not imported yet): a test
    that trains on one thread once left every later test on one, so a test passed in the suite and failed alone."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else len(os.sched_getaffinity(0))
    yield
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != before:
        torch.set_num_threads(before)


TRAINED_TASK_LAYOUTS = {
    "classification": "classification",
    "segmentation": "segmentation",
    "detection": "detection",
    "multitask": "detection",
}


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`torchbricks make-dataset shapes DIR --num-train 8 --num-val 4 --image-size 64`, once per session."""
    from torchbricks.__main__ import main

    root = tmp_path_factory.mktemp("shapes") / "shapes"
    assert main(["make-dataset", "shapes", str(root), "--num-train", "8", "--num-val", "4", "--image-size", "64"]) == 0
    return root


@pytest.fixture(scope="session")
def trained_experiment(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """`trained_experiment(task)`: the folder of a one-epoch run of `torchbricks train task=...` at 32x32 on the
    shapes, trained on first use and shared by the session."""
    from torchbricks.__main__ import main

    folders: dict[str, Path] = {}
    experiments = tmp_path_factory.mktemp("experiments")

    def get(task: str) -> Path:
        if task not in folders:
            arguments = [
                "train",
                f"task={task}",
                f"data.root={shapes_root / TRAINED_TASK_LAYOUTS[task]}",
                f"experiment.path_experiments={experiments}",
                f"experiment.name={task}",
                "trainer.max_epochs=1",
                "data.image_size=32",
                "data.batch_size=4",
                "data.num_workers=0",
                "n_visualized=0",
                "export_onnx=false",
            ]
            assert main(arguments) == 0
            folders[task] = experiments / task
        return folders[task]

    return get
