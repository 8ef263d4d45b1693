"""torchbricks.compat: the 0.4.2 entries live there and keep their 0.4.2 import paths."""

from __future__ import annotations

import subprocess
import sys

from torchbricks import brick_collection_utils, brick_tags, compat


def test_the_0_4_2_import_paths_give_the_compat_objects() -> None:
    assert (brick_tags.Tag, brick_tags.ModelStage) == (compat.Tag, compat.ModelStage)
    for name in ("filter_brick_types", "copy_metric_bricks", "per_stage_brick_collections"):
        assert getattr(brick_collection_utils, name) is getattr(compat, name)


def test_every_compat_entry_names_the_0_4_2_signature_it_serves() -> None:
    functions = [getattr(compat, name) for name in compat.__all__ if callable(getattr(compat, name)) and name[0].islower()]
    assert functions
    assert [function.__name__ for function in functions if "0.4.2: `" not in (function.__doc__ or "")] == []


def test_importing_the_0_4_2_tag_names_imports_no_torch() -> None:
    code = "import sys, torchbricks.brick_tags; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.strip() == "False"
