#!/usr/bin/env bash
# Counts of `canh replay` on every hand-counted clip (samples/groundtruth; the clip from
# samples/clips, or ../shared/clips/traffic for the clips that may not ship), at 5 analysed fps
# and at every frame, per direction and class group against the hand count (±10 %, at least 1).
#
#   benches/accuracy/run.sh [EXTRA canh replay ARGS...]    (needs target/release/canh)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CANH_LOG=warn
for truth in samples/groundtruth/*.json; do
  name=$(basename "$truth" .json)
  clip=$(ls samples/clips/"$name".* ../shared/clips/traffic/"$name".* 2>/dev/null | head -n1 || true)
  if [ -z "$clip" ]; then echo "$name: clip not found (needs ../shared), skipped"; continue; fi
  line=$(python3 -c "import json,sys; l=json.load(open(sys.argv[1]))['line']; print(','.join(str(v) for v in l['p1']+l['p2']))" "$truth")
  for fps in 5 0; do
    summary=$(target/release/canh replay --input "$clip" --line "$line" --fps "$fps" "$@" | tail -n1)
    python3 benches/accuracy/score.py "$truth" "$summary" --show "$name" "$fps"
  done
done
