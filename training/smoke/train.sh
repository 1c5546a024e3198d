#!/usr/bin/env bash
# Re-trains the smoke model from ../shared and writes models/smoke_cells/
# (smoke_cells.onnx, manifest.toml, metrics.json). CPU only; a few minutes on 2 cores.
# With --finetune it fine-tunes the whole network instead (finetune.py: about 15 minutes and a
# PyTorch install) and writes to target/smoke-finetuned/, which does not ship (README: why).
#
#   training/smoke/train.sh [--finetune] [SHARED_DIR]      (default: ../shared beside the repository)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
finetune=false
if [ "${1:-}" = "--finetune" ]; then finetune=true; shift; fi
shared="${1:-$root/../shared}"
data="$shared/datasets/aiformankind_hpwren_smoke"
negatives="$shared/datasets/dfire_aof_subset"
trunk="$root/models/yolox_nano/yolox_nano.onnx"
needed=("$data/images" "$data/annotations/xmls")
if $finetune; then needed+=("$negatives/images" "$negatives/labels"); fi
for path in "${needed[@]}"; do
    [ -e "$path" ] || { echo "train.sh: $path is missing (pass the shared folder as an argument)" >&2; exit 2; }
done
venv="$root/target/train-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r "$here/requirements.txt"
fi
cd "$here"
if $finetune; then
    "$venv/bin/pip" install --quiet -r requirements-finetune.txt
    PYTHONHASHSEED=0 exec "$venv/bin/python" finetune.py --data "$data" --negatives "$negatives" --trunk "$trunk" --out "$root/target/smoke-finetuned" "${@:2}"
fi
PYTHONHASHSEED=0 "$venv/bin/python" train.py --data "$data" --trunk "$trunk" --out "$root/models/smoke_cells" --cache "$root/target/train-cache" "${@:2}"
