"""`torchbricks export EXPERIMENT`: one ONNX file taking uint8 images and giving final results, with its metadata."""

from __future__ import annotations

import argparse
from typing import Any

from torchbricks._cli_help import HelpFormatter
from torchbricks._experiment import expand_home

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="export a trained experiment as one deployable ONNX file (uint8 images in, final results of every head out)",
        description="Exports a trained experiment as one ONNX file whose input is a uint8 RGB image batch [B, 3, H, W] "
        "and whose outputs are each head's final results (boxes, scores and labels after NMS, class masks, class "
        "probabilities, points with their scores and labels, counts), holding its metadata (class names, input, outputs, "
        "heads), with a copy in <file>.json beside it. torchbricks.deploy.OnnxPredictor runs it without torch.",
        epilog="example: torchbricks export build/experiments/run\n"
        "         torchbricks export build/experiments/run --quantize int8 --out model_int8.onnx",
        formatter_class=HelpFormatter,
    )
    export.add_argument("experiment", type=expand_home, help="the experiment folder written by `torchbricks train`")
    export.add_argument("--format", choices=["onnx"], default="onnx", help="the file format (default: onnx)")
    export.add_argument(
        "--quantize", choices=["int8"], default=None, help="int8 static quantization, calibrated on training images"
    )
    export.add_argument("--image-size", type=int, default=None, help="side of the input images (default: the experiment's)")
    export.add_argument(
        "--out", type=expand_home, default=None, help="the file to write (default: EXPERIMENT/deploy.onnx, deploy_int8.onnx)"
    )
    export.add_argument(
        "--images", type=expand_home, default=None, help="images to calibrate int8 on when the experiment's data is gone"
    )
    export.add_argument("--overwrite", action="store_true", help="replace an existing file")


def run(arguments: argparse.Namespace) -> int:
    from torchbricks.deploy_export import export_deployable_onnx

    result = export_deployable_onnx(
        arguments.experiment,
        arguments.out,
        image_size=arguments.image_size,
        quantize=arguments.quantize,
        images=arguments.images,
        overwrite=arguments.overwrite,
    )
    metadata = result.metadata
    heads = ", ".join(f"{head} ({entry['kind']})" for head, entry in metadata["heads"].items())
    height, width = metadata["image_size"]
    print(f"Wrote {result.path_onnx} and {result.path_metadata.name}: uint8 images [B, 3, {height}, {width}] -> {heads}")
    quantization = metadata.get("quantization")
    if quantization:
        print(f"int8: {quantization['int8_file_bytes'] / 1e6:.1f} MB (float32 {quantization['float_file_bytes'] / 1e6:.1f} MB)")
        print(f"  evaluated on {quantization['evaluated_on']}")
        for name, change in ((quantization.get("metrics") or {}).get("change") or {}).items():
            before = quantization["metrics"]["float32"][name]
            print(f"  {name}: float32 {before:.4f} -> int8 {before + change:.4f} ({change:+.4f})")
        for name, value in quantization["agreement"].items():
            print(f"  {name}: {value:.4g}")
    return 0
