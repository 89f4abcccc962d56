#!/usr/bin/env bash
# Set up the development environment (once) and run the test suite.
#
# The one command from a fresh clone, on a machine with only Python 3.10+:
#   bash scripts/test.sh                 # the fast, offline suite
#   bash scripts/test.sh -m slow -x      # arguments go to pytest
#
# Environment: see scripts/setup.sh (PYTHON, BERTKIT_TORCH).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh dev,quickstart,export,serve
exec .venv/bin/python -m pytest "$@"
