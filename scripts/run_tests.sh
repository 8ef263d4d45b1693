#!/usr/bin/env bash
# The full test suite on a fresh machine: creates .venv, installs torchbricks with its dev extra,
# then runs ruff, mypy over src/ and the whole pytest suite, the tests marked slow included (what CI runs).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/ruff format --check src tests benchmarks scripts
.venv/bin/mypy
echo "Tested against:" $(.venv/bin/python -m pip freeze --exclude-editable | grep -iE "^(torch|torchvision|torchmetrics|pytorch-lightning|onnx|onnxruntime|onnxscript|numpy|pillow|hypothesis)==")
# the 30 slowest tests at the end of the log, so that a slower run can be compared test by test
.venv/bin/python -m pytest --durations=30 "$@"
