#!/usr/bin/env bash
# The main job on a fresh machine: creates .venv, installs torchbricks with its train extra and trains
# a brick model on scikit-learn's digits (no download). Extra arguments are Hydra overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[train]"
.venv/bin/torchbricks train "$@"
