"""The mermaid graph reproduces the specification's graphs and draws keyword, `__all__` and nested wiring."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from readme_blocks import mermaid_blocks
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickInterface, BrickLoss, BrickMetricSingle, BrickNotTrainable, BrickTrainable
from torchbricks.errors import NoBricksSelectedError
from torchbricks.graph_plotter import create_mermaid_dag_graph
from torchbricks.tags import Stage

SPEC = Path(__file__).parent / "spec" / "torchbricks-README.md"
CONCEPT1, INFERENCE, TRAINING, NESTED = mermaid_blocks(SPEC)


# Dummy modules carrying the class names the spec's graphs show.
class PreprocessorDummy(nn.Identity):
    pass


class TinyModel(nn.Identity):
    pass


class ClassifierDummy(nn.Identity):
    pass


class Preprocessor(nn.Identity):
    pass


class BackboneResnet(nn.Identity):
    pass


class ImageClassifier(nn.Identity):
    pass


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def _concept_bricks(tags: bool) -> dict[str, BrickInterface]:
    model_tags = {"tags": "MODEL"} if tags else {}
    return {
        "preprocessor": BrickNotTrainable(
            PreprocessorDummy(), input_names=["raw_images"], output_names=["processed"], **model_tags
        ),
        "backbone": BrickTrainable(TinyModel(), input_names=["processed"], output_names=["embedding"], **model_tags),
        "head": BrickTrainable(ClassifierDummy(), input_names=["embedding"], output_names=["logits", "softmaxed"], **model_tags),
    }


def _concept2_collection() -> BrickCollection:
    bricks = _concept_bricks(tags=True)
    bricks["loss"] = BrickLoss(
        model=nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["loss_ce"], tags="LOSS"
    )
    return BrickCollection(bricks)


def _image_classification_head(num_classes: int, features_name: str, targets_name: str) -> dict[str, BrickInterface]:
    return {
        "classify": BrickTrainable(
            ImageClassifier(), input_names=[features_name], output_names=["./logits", "./probabilities", "./class_prediction"]
        ),
        "accuracy": BrickMetricSingle(
            MulticlassAccuracy(num_classes=num_classes), input_names=["./class_prediction", targets_name]
        ),
        "loss": BrickLoss(model=nn.CrossEntropyLoss(), input_names=["./logits", targets_name], output_names=["./loss_ce"]),
    }


def _nested_collection() -> BrickCollection:
    return BrickCollection(
        {
            "preprocessor": BrickNotTrainable(Preprocessor(), input_names=["raw"], output_names=["normalized"]),
            "backbone": BrickTrainable(BackboneResnet(), input_names=["normalized"], output_names=["features"]),
            "head0": _image_classification_head(num_classes=3, features_name="features", targets_name="targets0"),
            "head1": _image_classification_head(num_classes=5, features_name="features", targets_name="targets1"),
        }
    )


def test_graph_of_concept_1_equals_the_spec_line_for_line() -> None:
    graph = create_mermaid_dag_graph(BrickCollection(_concept_bricks(tags=False)))
    assert _lines(graph) == _lines(CONCEPT1)


def test_graph_for_model_tags_equals_the_spec_inference_graph() -> None:
    graph = create_mermaid_dag_graph(_concept2_collection(), tags={"MODEL"})
    assert _lines(graph) == _lines(INFERENCE)


def test_graph_of_all_bricks_equals_the_spec_training_graph() -> None:
    collection = _concept2_collection()
    assert _lines(create_mermaid_dag_graph(collection)) == _lines(TRAINING)
    assert create_mermaid_dag_graph(collection, tags={"MODEL", "LOSS"}) == create_mermaid_dag_graph(collection)


def test_graph_of_nested_heads_equals_the_spec_graph_with_subgraphs() -> None:
    graph = create_mermaid_dag_graph(_nested_collection())
    assert _lines(graph) == _lines(NESTED)


def test_graph_keeps_the_spec_whitespace_exactly() -> None:
    assert create_mermaid_dag_graph(_nested_collection()) + "\n" == NESTED


def test_graph_for_the_export_stage_drops_losses_and_metrics_and_their_inputs() -> None:
    graph = create_mermaid_dag_graph(_nested_collection(), tags=Stage.EXPORT)
    assert "head0/loss" not in graph
    assert "head0/accuracy" not in graph
    assert "targets0" not in graph
    assert "BrickLoss" not in graph
    assert "        head0/classify --> head0/logits:::output" in graph.splitlines()  # no loss reads it any more


def test_graph_for_tags_selecting_nothing_raises() -> None:
    with pytest.raises(NoBricksSelectedError, match="select no brick"):
        create_mermaid_dag_graph(_nested_collection(), tags="VISUALIZATION")


def test_keyword_input_names_draw_one_edge_per_name() -> None:
    collection = BrickCollection(
        {
            "split": BrickTrainable(nn.Identity(), input_names=["x"], output_names=["a"]),
            "other": BrickTrainable(nn.Identity(), input_names=["x"], output_names=["b"]),
            "join": BrickTrainable(_Join(), input_names={"left": "a", "right": "b", "extra": "y"}, output_names=["c"]),
        }
    )
    lines = _lines(create_mermaid_dag_graph(collection))
    edges = lines[lines.index("    %% Draw input and outputs") :]
    assert "    x:::input --> split" in edges
    assert "    x:::input --> other" in edges
    assert "    y:::input --> join" in edges
    assert "    split --> |a| join" in edges
    assert "    other --> |b| join" in edges
    assert "    join --> c:::output" in edges
    assert not any("left" in line or "right" in line for line in edges)


def test_all_names_input_gets_an_edge_from_every_brick_that_runs_before_it() -> None:
    collection = BrickCollection(
        {
            "backbone": BrickTrainable(nn.Identity(), input_names=["raw"], output_names=["embedding"]),
            "post_processor": BrickNotTrainable(nn.Identity(), input_names=["__all__"], output_names=["postprocessed"]),
            "head": BrickTrainable(nn.Identity(), input_names=["embedding"], output_names=["logits"]),
        }
    )
    lines = _lines(create_mermaid_dag_graph(collection))
    assert "    raw:::input --> backbone" in lines
    assert "    raw:::input --> |__all__| post_processor" in lines
    assert "    backbone --> |embedding| head" in lines
    assert "    backbone --> |__all__| post_processor" in lines
    assert "    head --> |__all__| post_processor" in lines  # head runs first: post_processor sees its logits
    assert "    head --> logits:::output" in lines  # read through __all__ only, so still an output
    assert "    post_processor --> postprocessed:::output" in lines
    assert not any("post_processor --> |" in line for line in lines)


def test_bricks_in_deeper_collections_draw_inside_nested_subgraphs() -> None:
    collection = BrickCollection(
        {
            "backbone": BrickTrainable(nn.Identity(), input_names=["raw"], output_names=["features"]),
            "head": {
                "neck": {"upsample": BrickTrainable(nn.Identity(), input_names=["../../features"], output_names=["./up"])},
                "classify": BrickTrainable(nn.Identity(), input_names=["./neck/up"], output_names=["./logits"]),
            },
        }
    )
    body = _lines(create_mermaid_dag_graph(collection))
    start = body.index("    %% Draw nodes and edges")
    assert body[start + 1 : start + 10] == [
        "    backbone --> |features| head/neck/upsample",
        "    subgraph head",
        "        head/classify --> head/logits:::output",
        "        subgraph head/neck",
        "            head/neck/upsample --> |head/neck/up| head/classify",
        "        end",
        "    end",
        "",
        "    %% Add styling",
    ]


def test_names_mermaid_cannot_read_get_generated_ids_and_keep_their_text() -> None:
    collection = BrickCollection(
        {
            "end": BrickTrainable(nn.Identity(), input_names=["raw image"], output_names=["end"]),
            "b": BrickTrainable(nn.Identity(), input_names=["end"], output_names=["a|b"]),
        }
    )
    lines = _lines(create_mermaid_dag_graph(collection))
    assert "    brick_0(<strong>'end': Identity</strong><br><i>BrickTrainable</i>):::BrickTrainable" in lines
    assert '    data_0["raw image"]:::input --> brick_0' in lines
    assert '    brick_0 --> |"end"| b' in lines
    assert '    b --> data_1["a#124;b"]:::output' in lines


def test_a_generated_id_never_repeats_a_plain_one() -> None:
    collection = BrickCollection(
        {
            "scope_0": {"a": BrickTrainable(nn.Identity(), input_names=["x"], output_names=["y"])},
            "my head": {"b": BrickTrainable(nn.Identity(), input_names=["y"], output_names=["z"])},
        }
    )
    lines = _lines(create_mermaid_dag_graph(collection))
    assert "    subgraph scope_0" in lines
    assert '    subgraph scope_1["my head"]' in lines


def test_names_spelled_like_the_legend_nodes_stay_out_of_the_legend() -> None:
    collection = BrickCollection(
        {
            "output": BrickTrainable(nn.Identity(), input_names=["input"], output_names=["y"]),
            "Legends": {"b": BrickTrainable(nn.Identity(), input_names=["y"], output_names=["output"])},
        }
    )
    lines = _lines(create_mermaid_dag_graph(collection))
    assert "    brick_0(<strong>'output': Identity</strong><br><i>BrickTrainable</i>):::BrickTrainable" in lines
    assert '    data_0["input"]:::input --> brick_0' in lines
    assert '    subgraph scope_0["Legends"]' in lines
    assert '        Legends/b --> data_1["output"]:::output' in lines
    assert lines[-4:] == ["    subgraph Legends", "        input(input):::input", "        output(output):::output", "    end"]


def test_unknown_brick_types_get_their_own_class_and_colour() -> None:
    class BrickCustom(BrickTrainable):
        pass

    collection = BrickCollection(
        {
            "a": BrickCustom(nn.Identity(), input_names=["x"], output_names=["y"]),
            "b": BrickTrainable(nn.Identity(), input_names=["y"], output_names=["z"]),
        }
    )
    lines = _lines(create_mermaid_dag_graph(collection))
    assert "    a(<strong>'a': Identity</strong><br><i>BrickCustom</i>):::BrickCustom" in lines
    class_lines = [line for line in lines if line.startswith("    classDef Brick")]
    assert class_lines == [
        "    classDef BrickCustom stroke-width:0px,fill:#9DB4D3",
        "    classDef BrickTrainable stroke-width:0px,fill:#6D597A",
    ]


def test_collection_displays_as_a_mermaid_block_in_notebooks() -> None:
    collection = _nested_collection()
    markdown = collection._repr_markdown_()
    assert markdown == f"```mermaid\n{create_mermaid_dag_graph(collection)}\n```"
    assert BrickCollection({})._repr_markdown_() is None


def test_graph_of_the_readme_quick_start_equals_the_readme_graph() -> None:
    (readme_graph,) = [
        block for block in mermaid_blocks(Path(__file__).parent.parent / "README.md") if "'head/classify': Linear" in block
    ]
    model = BrickCollection(
        {
            "backbone": BrickTrainable(
                nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU()), input_names=["raw"], output_names=["features"]
            ),
            "head": {
                "classify": BrickTrainable(nn.Linear(32, 10), input_names=["features"], output_names=["./logits"]),
                "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["./logits", "targets"], output_names=["./loss"]),
                "accuracy": BrickMetricSingle(MulticlassAccuracy(num_classes=10), input_names=["./logits", "targets"]),
            },
        }
    )
    assert create_mermaid_dag_graph(model) + "\n" == readme_graph


class _TakesAny(nn.Module):
    """A module taking any inputs (the graphs here are drawn, never run)."""

    def forward(self, *inputs: object) -> object:
        return inputs[0] if inputs else None


class _Join(nn.Module):
    def forward(self, left: object, right: object, extra: object) -> object:
        return left


@st.composite
def _random_collections(draw: st.DrawFn) -> tuple[BrickCollection, frozenset[str]]:
    """Bricks reading earlier outputs or external inputs, in random nesting and tags, plus a tag selection."""
    n_bricks = draw(st.integers(1, 7))
    available = ["x0", "x1"]
    tree: dict[str, dict[str, BrickInterface]] = {}
    for index in range(n_bricks):
        inputs = draw(st.lists(st.sampled_from(available), min_size=1, max_size=3, unique=True))
        outputs = [f"v{index}_{k}" for k in range(draw(st.integers(1, 2)))]
        tag = draw(st.sampled_from(["MODEL", "LOSS"]))
        group = draw(st.sampled_from(["root", "a", "b"]))
        tree.setdefault(group, {})[f"brick{index}"] = BrickTrainable(
            _TakesAny(), input_names=inputs, output_names=outputs, tags=tag
        )
        available += outputs
    bricks: dict[str, object] = dict(tree.pop("root", {}))
    bricks.update(tree)
    tags = draw(st.sampled_from([frozenset({"MODEL"}), frozenset({"LOSS"}), frozenset({"MODEL", "LOSS"})]))
    return BrickCollection(bricks), tags  # type: ignore[arg-type]


@given(_random_collections())
@settings(max_examples=60, deadline=None)
def test_graph_edges_equal_the_wiring_of_the_selected_bricks(case: tuple[BrickCollection, frozenset[str]]) -> None:
    collection, tags = case
    selected = [node for node in collection.plan().nodes if node.tags & tags]
    assume(selected)
    producer = {name: node.path for node in selected for name in node.outputs}
    read = {name for node in selected for name in node.inputs}
    expected = set()
    for node in selected:
        for name in node.inputs:
            expected.add((producer[name], name, node.path) if name in producer else (f"{name}:::input", "", node.path))
        expected.update((node.path, "", f"{name}:::output") for name in node.outputs if name not in read)

    graph = create_mermaid_dag_graph(collection, tags=tags)

    edge = re.compile(r"^\s+(\S+) --> (?:\|(\S+)\| )?(\S+)$")
    drawn = [match.groups(default="") for line in graph.splitlines() if (match := edge.match(line))]
    assert len(drawn) == len(set(drawn))
    assert set(drawn) == expected
    defined = [line.split("(")[0].strip() for line in graph.splitlines() if "<strong>" in line]
    assert defined == [node.path for node in selected]


def _contrast_with_black(color: str) -> float:
    """WCAG contrast ratio of black text on `color` (1 to 21)."""
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return (luminance + 0.05) / 0.05


def test_brick_fills_keep_black_text_readable_except_the_two_the_spec_prints() -> None:
    from torchbricks import _mermaid

    colors = {**_mermaid._BRICK_COLORS, **{f"extra{i}": c for i, c in enumerate(_mermaid._EXTRA_COLORS)}}
    unreadable = {kind: color for kind, color in colors.items() if _contrast_with_black(color) < 7}
    assert unreadable == _mermaid._SPEC_COLORS
