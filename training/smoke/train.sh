#!/usr/bin/env bash
# Re-trains the smoke model from ../shared and writes models/smoke_cells/
# (smoke_cells.onnx, manifest.toml, metrics.json). CPU only; a few minutes on 2 cores.
#
#   training/smoke/train.sh [SHARED_DIR]      (default: ../shared beside the repository)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
shared="${1:-$root/../shared}"
data="$shared/datasets/aiformankind_hpwren_smoke"
trunk="$root/models/yolox_nano/yolox_nano.onnx"
for needed in "$data/images" "$data/annotations/xmls"; do
    [ -e "$needed" ] || { echo "train.sh: $needed is missing (pass the shared folder as the first argument)" >&2; exit 2; }
done
venv="$root/target/train-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r "$here/requirements.txt"
fi
cd "$here"
PYTHONHASHSEED=0 "$venv/bin/python" train.py --data "$data" --trunk "$trunk" --out "$root/models/smoke_cells" --cache "$root/target/train-cache" "${@:2}"
