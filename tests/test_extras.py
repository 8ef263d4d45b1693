"""`require`: an optional module is imported, or the error says what to install."""

from __future__ import annotations

import pytest

from torchbricks._extras import require
from torchbricks.errors import BrickError, MissingExtraError


def test_an_installed_module_is_returned() -> None:
    assert require("json.decoder", "unused").__name__ == "json.decoder"


def test_a_missing_module_names_the_extra_to_install() -> None:
    with pytest.raises(MissingExtraError, match=r"^'no_such_module' is not installed; it comes with the 'onnx' extra: "):
        require("no_such_module", "onnx")
    with pytest.raises(MissingExtraError, match=r'pip install "torchbricks\[onnx\]"$'):
        require("no_such_module", "onnx")


def test_a_module_of_no_extra_names_its_package_the_reason_and_the_alternative() -> None:
    message = r"^Reading video 'x\.mp4' needs it, which is not installed; pip install torchcodec, or extract the frames$"
    with pytest.raises(MissingExtraError, match=message):
        require(
            "no_such_module.decoders",
            package="torchcodec",
            why="Reading video 'x.mp4' needs it",
            alternative="or extract the frames",
        )
    with pytest.raises(MissingExtraError, match=r"pip install no_such_module$"):
        require("no_such_module.sub")


def test_the_error_is_a_brick_error_and_keeps_the_import_error() -> None:
    with pytest.raises(BrickError) as raised:
        require("no_such_module")
    assert isinstance(raised.value.__cause__, ImportError)
