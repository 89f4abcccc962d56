#!/usr/bin/env bash
# Create .venv (once) and install bertkit into it, with the extras given.
#
#   bash scripts/setup.sh dev,quickstart
#
# Used by scripts/test.sh and scripts/quickstart.sh. Safe to rerun: the virtualenv
# and torch are reused and bertkit is reinstalled in editable mode (cheap).
#
# Environment:
#   PYTHON          interpreter that creates .venv (default: python3)
#   BERTKIT_TORCH   the torch requirement installed when .venv has no torch yet
#                   (default: torch==2.13.0, a CPU build on this project's machines)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-python3}
torch_requirement=${BERTKIT_TORCH:-torch==2.13.0}
venv=.venv
pip_flags=(-q --disable-pip-version-check)

if [[ ! -x $venv/bin/python ]]; then
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        echo "scripts/setup.sh: bertkit needs Python 3.10 or newer; set PYTHON=python3.X" >&2
        exit 1
    fi
    echo "creating $venv with $("$python" --version 2>&1)" >&2
    "$python" -m venv "$venv"
fi
py=$venv/bin/python

"$py" -m pip install "${pip_flags[@]}" --upgrade pip

# torch first, and pinned: left to the project's range (torch>=2.4), pip picks the
# newest release, which on Linux is a multi-GB CUDA build. Once any torch is in the
# venv, the range is satisfied and pip leaves it alone.
if ! "$py" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)'; then
    echo "installing $torch_requirement" >&2
    "$py" -m pip install "${pip_flags[@]}" "$torch_requirement"
fi

extras=${1:-quickstart}
"$py" -m pip install "${pip_flags[@]}" -e ".[$extras]"

