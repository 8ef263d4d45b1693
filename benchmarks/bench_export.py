"""`torchbricks export`: (a) the deployable file's predictions against the bricks', (b) its latency against YOLOv8n.

(a) A detection experiment (trained here on generated shapes unless `--experiment` is given) is exported; the
torch-free `OnnxPredictor` runs on the validation images at their own size and at an enlarged size, and its
boxes, scores and labels are matched with the bricks' (the collection in PyTorch on the same resized uint8
images, boxes scaled the same way): the largest difference and whether every image has as many boxes. The int8
export's metric change is printed too.

(b) The same detector exported at 192x192 and Ultralytics YOLOv8n exported to ONNX at 192x192 (random weights from
`yolov8n.yaml`: latency does not depend on the weights; Ultralytics is never a torchbricks dependency, it runs in a
separate venv, `--yolo-python`) are timed in one onnxruntime process with the same session options, batch 1,
alternating the two models, median per call. YOLOv8n is timed as exported by default (raw head outputs, NMS left
to the caller) and with `nms=True` (NMS inside, like ours).

    python3 -m venv /work/venv-yolo && /work/venv-yolo/bin/pip install ultralytics onnx onnxruntime
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_export.py --yolo-python /work/venv-yolo/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

YOLO_EXPORT = """
import shutil, sys
from ultralytics import YOLO
path = YOLO("yolov8n.yaml").export(format="onnx", imgsz=int(sys.argv[1]), nms=sys.argv[2] == "nms", simplify=False)
shutil.move(path, sys.argv[3])
"""


def train_detector(folder: Path, epochs: int) -> Path:
    from torchbricks.__main__ import main
    from torchbricks.datasets.shapes import write_shapes_dataset

    experiment = folder / "experiments" / "detector"
    if (experiment / "bricks").is_dir():
        return experiment
    root = write_shapes_dataset(folder / "shapes", num_train=200, num_val=50, image_size=96, overwrite=True)
    arguments = [
        f"data.root={root / 'detection'}",
        f"experiment.path_experiments={experiment.parent}",
        "experiment.name=detector",
    ]
    status = main(
        ["train", "task=detection", *arguments, f"trainer.max_epochs={epochs}", "n_visualized=0", "experiment.overwrite=true"]
    )
    if status != 0:
        raise SystemExit(status)
    return experiment


def compare_with_bricks(experiment: Path, path_onnx: Path) -> dict[str, float]:
    """(a): `OnnxPredictor` against the collection on the validation images, at their size and enlarged."""
    import torch
    from PIL import Image

    from torchbricks.deploy import OnnxPredictor, resize_image
    from torchbricks.tags import Stage
    from torchbricks.trained_experiment import load_experiment

    loaded = load_experiment(experiment)  # a relative data.root is read from the folder training ran in
    if loaded.unlocated_data_root:
        raise SystemExit(f"No data to compare on: {loaded.unlocated_data_root}.")
    predictor = OnnxPredictor(path_onnx)
    height, width = predictor.image_size
    root = Path(str(loaded.config.data.root))
    files = sorted(json.loads((root / "val.json").read_text())["images"], key=lambda image: image["id"])
    originals = [np.asarray(Image.open(root / image["file_name"]).convert("RGB")) for image in files]
    enlarged = [np.asarray(Image.fromarray(image).resize((200, 150))) for image in originals]
    largest, same_count, boxes_total, images = 0.0, 0, 0, 0
    for group in (originals, enlarged):
        results = predictor.predict(group, batch_size=8)
        for image, result in zip(group, results, strict=True):
            resized = torch.from_numpy(resize_image(image, (height, width)).transpose(2, 0, 1).copy())[None]
            with torch.no_grad():
                outputs = loaded.collection(named_inputs={"raw": resized.float() / 255}, tags=Stage.EXPORT)
            labels = outputs["detection/labels"][0].numpy()
            kept = labels >= 0
            scale = np.array([image.shape[1] / width, image.shape[0] / height] * 2, dtype=np.float32)
            reference = np.concatenate(
                [outputs["detection/boxes"][0].numpy()[kept] * scale, outputs["detection/scores"][0].numpy()[kept, None]], axis=1
            )
            mine = result["detection"]
            rows = np.concatenate([mine["boxes"], mine["scores"][:, None]], axis=1)
            images += 1
            if len(rows) != len(reference) or sorted(mine["labels"].tolist()) != sorted(labels[kept].tolist()):
                continue
            same_count += 1
            boxes_total += len(rows)
            for row in rows:  # matched in any order: equal scores may leave top-k in another order
                largest = max(largest, float(np.abs(reference - row).max(axis=1).min()))
    return {"images": images, "same_box_count": same_count, "boxes": boxes_total, "max_abs_difference": largest}


def time_sessions(files: dict[str, tuple[Path, np.ndarray]], threads: int, repeats: int) -> dict[str, float]:
    """(b): median ms per call of each file, one process, the same session options, the models alternated."""
    import onnxruntime

    sessions = {}
    for name, (path, example) in files.items():
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: example}
        for _ in range(10):
            session.run(None, feed)
        sessions[name] = (session, feed)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(repeats):
        for name, (session, feed) in sessions.items():
            started = time.perf_counter()
            session.run(None, feed)
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", default="build/bench_export", help="where data, experiment and files go")
    parser.add_argument("--experiment", default=None, help="a trained detection experiment (trained here when absent)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--yolo-python", default="/work/venv-yolo/bin/python", help="a Python with ultralytics installed")
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--repeats", type=int, default=200)
    arguments = parser.parse_args()

    from torchbricks.deploy_export import export_deployable_onnx

    folder = Path(arguments.folder)
    folder.mkdir(parents=True, exist_ok=True)
    experiment = Path(arguments.experiment) if arguments.experiment else train_detector(folder, arguments.epochs)

    exported = export_deployable_onnx(experiment, folder / "detector.onnx", overwrite=True)
    comparison = compare_with_bricks(experiment, exported.path_onnx)
    print(f"(a) OnnxPredictor against the bricks, {exported.metadata['image_size']} input: {comparison}")
    quantized = export_deployable_onnx(experiment, folder / "detector_int8.onnx", quantize="int8", overwrite=True)
    report = quantized.metadata["quantization"]
    print(f"    int8: {report['evaluated_on']}: {json.dumps(report['metrics'], indent=None)}")
    print(f"    int8 agreement: {report['agreement']}")

    size = arguments.size
    ours = export_deployable_onnx(experiment, folder / f"detector_{size}.onnx", image_size=size, overwrite=True).path_onnx
    ours_int8 = export_deployable_onnx(
        experiment, folder / f"detector_{size}_int8.onnx", image_size=size, quantize="int8", overwrite=True
    ).path_onnx
    if not Path(arguments.yolo_python).is_file():
        print(f"(b) skipped: no Python with ultralytics at {arguments.yolo_python!r} (--yolo-python; see the docstring)")
        return
    yolo = {}
    for variant in ("plain", "nms"):
        yolo[variant] = folder / f"yolov8n_{size}_{variant}.onnx"
        if not yolo[variant].is_file():
            subprocess.run(
                [arguments.yolo_python, "-c", YOLO_EXPORT, str(size), variant, str(yolo[variant].resolve())],
                check=True,
                cwd=folder,
                env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "YOLO_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
                timeout=900,
            )
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, 3, size, size), dtype=np.uint8)
    files = {
        "torchbricks detector (uint8 in, NMS inside)": (ours, image),
        "torchbricks detector int8": (ours_int8, image),
        "YOLOv8n (float in, raw outputs)": (yolo["plain"], image.astype(np.float32) / 255),
        "YOLOv8n nms=True": (yolo["nms"], image.astype(np.float32) / 255),
    }
    print(f"(b) onnxruntime latency per {size}x{size} image, batch 1, median of {arguments.repeats} alternated calls")
    for threads in (1, 2):
        medians = time_sessions(files, threads, arguments.repeats)
        reference = medians["YOLOv8n (float in, raw outputs)"]
        for name, value in medians.items():
            print(f"    threads={threads}  {name:45s} {value:7.2f} ms  ratio to YOLOv8n {value / reference:.2f}")
    sizes = {name: path.stat().st_size / 1e6 for name, (path, _) in files.items()}
    print(f"    file sizes (MB): {sizes}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
