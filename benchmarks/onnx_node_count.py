"""What a brick collection costs in an exported graph, and what each stage compiles and exports to.

1. ONNX node count of the spec's two-head model (ResNet-18 backbone, two classification heads) exported with
   `export_bricks_as_onnx` against the same modules called by a hand-written `nn.Module` and exported with the
   same `torch.onnx.export` settings. Both files also run in onnxruntime on another batch size.
2. Per stage: dynamo graph and graph-break count (`torch._dynamo.explain`), whether
   `torch.compile(fullgraph=True)` succeeds, and the node counts of `torch.export` and ONNX exports of the
   stage's bricks.

Run: .venv/bin/python benchmarks/onnx_node_count.py [--backend aot_eager|inductor]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
import torchvision
from torch import nn

from torchbricks.bag_of_bricks.backbones import resnet_to_brick
from torchbricks.bag_of_bricks.image_classification import create_image_classification_head
from torchbricks.bag_of_bricks.preprocessors import Preprocessor
from torchbricks.brick_collection import BrickCollection
from torchbricks.brick_collection_utils import export_bricks, export_bricks_as_onnx
from torchbricks.bricks import BrickNotTrainable
from torchbricks.tags import STAGE_TAGS, Stage


def create_collection() -> BrickCollection:
    torch.manual_seed(0)
    backbone = resnet_to_brick(torchvision.models.resnet18(weights=None), input_name="normalized", output_name="features")
    n_features = backbone.model.n_backbone_features
    return BrickCollection(
        {
            "preprocessor": BrickNotTrainable(Preprocessor(), input_names=["raw"], output_names=["normalized"]),
            "backbone": backbone,
            "head0": create_image_classification_head(3, n_features, "features", "targets0"),
            "head1": create_image_classification_head(5, n_features, "features", "targets1"),
        }
    )


class PlainTwoHeads(nn.Module):
    """The hand-written reference: the collection's export-stage modules called in order, same outputs."""

    def __init__(self, collection: BrickCollection) -> None:
        super().__init__()
        self.preprocessor = collection["preprocessor"].model
        self.backbone = collection["backbone"].model
        self.classify0 = collection["head0"]["classify"].model
        self.classify1 = collection["head1"]["classify"].model

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, ...]:
        normalized = self.preprocessor(raw)
        features = self.backbone(normalized)
        return (normalized, features, *self.classify0(features), *self.classify1(features))


def named_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    return {
        "raw": torch.rand(batch_size, 3, 64, 64),
        "targets0": torch.randint(0, 3, (batch_size,)),
        "targets1": torch.randint(0, 5, (batch_size,)),
    }


def onnx_ops(model: onnx.ModelProto) -> collections.Counter[str]:
    return collections.Counter(node.op_type for node in model.graph.node)


def run_onnx(path: Path, raw: torch.Tensor) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: raw.numpy()})


def compare_onnx(folder: Path) -> None:
    collection = create_collection().eval()
    path_bricks = export_bricks_as_onnx(folder / "bricks.onnx", collection, named_inputs(2), dynamic_batch_size=True)
    model_bricks = onnx.load(str(path_bricks))
    plain = PlainTwoHeads(collection).eval()
    path_plain = folder / "plain.onnx"
    batch = torch.export.Dim("batch")
    torch.onnx.export(
        plain,
        (torch.rand(2, 3, 64, 64),),
        str(path_plain),
        input_names=["raw"],
        output_names=[output.name for output in model_bricks.graph.output],
        dynamo=True,
        dynamic_shapes=({0: batch},),
        external_data=False,
        verbose=False,
    )
    model_plain = onnx.load(str(path_plain))
    ops_bricks, ops_plain = onnx_ops(model_bricks), onnx_ops(model_plain)
    raw = torch.rand(5, 3, 64, 64)
    difference = max(
        float(np.abs(a - b).max()) for a, b in zip(run_onnx(path_bricks, raw), run_onnx(path_plain, raw), strict=True)
    )
    print("## ONNX node count: export_bricks_as_onnx vs the same modules in a plain nn.Module\n")
    print("| graph | nodes | initializers | file size |")
    print("| --- | --- | --- | --- |")
    for name, path, model, ops in (
        ("BrickCollection (Stage.EXPORT)", path_bricks, model_bricks, ops_bricks),
        ("plain nn.Module", path_plain, model_plain, ops_plain),
    ):
        print(f"| {name} | {sum(ops.values())} | {len(model.graph.initializer)} | {path.stat().st_size / 1e6:.2f} MB |")
    extra = (ops_bricks - ops_plain) + (ops_plain - ops_bricks)
    print(f"\nop types differing: {dict(extra) or 'none'}; max |output difference| in onnxruntime at batch 5: {difference:.1e}\n")


def stage_table(folder: Path, backend: str) -> None:
    print(f"## Per stage (torch.compile backend={backend!r}, batch 2x3x64x64)\n")
    print("| stage | tags | dynamo graphs | graph breaks | compile(fullgraph=True) | torch.export nodes | ONNX nodes |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for stage in Stage:
        collection = create_collection()
        collection.train(stage == Stage.TRAIN)
        inputs = named_inputs(2)
        torch._dynamo.reset()
        explained = torch._dynamo.explain(collection)(inputs, tags=stage)
        torch._dynamo.reset()
        try:
            compiled = torch.compile(collection, fullgraph=True, backend=backend)
            outputs = compiled(inputs, tags=stage)
            expected = collection(inputs, tags=stage)
            same = all(torch.allclose(outputs[name].float(), value.float(), atol=1e-4) for name, value in expected.items())
            compile_result = "ok, equal to eager" if same else "ok, DIFFERS from eager"
        except Exception as error:
            compile_result = f"fails: {type(error).__name__}"
        try:
            program = export_bricks(collection, inputs, tags=stage)
            export_result = str(len(program.graph.nodes))
        except Exception as error:
            export_result = f"fails: {type(error).__name__}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                path = export_bricks_as_onnx(
                    folder / f"{stage.value}.onnx", collection, inputs, dynamic_batch_size=True, tags=stage
                )
            onnx_result = str(sum(onnx_ops(onnx.load(str(path))).values()))
        except Exception as error:
            onnx_result = f"fails: {type(error).__name__}"
        tags = ", ".join(sorted(STAGE_TAGS[stage]))
        print(
            f"| {stage.name} | {tags} | {explained.graph_count} | {explained.graph_break_count} | {compile_result} | "
            f"{export_result} | {onnx_result} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", default="aot_eager", help="torch.compile backend for the per-stage table")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}\n")
    with tempfile.TemporaryDirectory() as folder:
        compare_onnx(Path(folder))
        stage_table(Path(folder), args.backend)


if __name__ == "__main__":
    main()
