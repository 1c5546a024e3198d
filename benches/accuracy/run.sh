#!/usr/bin/env bash
# Counts of `canh replay` on every hand-counted clip (samples/groundtruth; the clip from
# samples/clips, or ../shared/clips/traffic for the clips that may not ship), at 5 analysed fps
# and at every frame, per direction and class group against the hand count (±10 %, at least 1).
#
#   benches/accuracy/run.sh [EXTRA canh replay ARGS...]    (needs target/release/canh)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CANH_LOG=warn
. benches/accuracy/common.sh
for truth in samples/groundtruth/*.json; do
  name=$(basename "$truth" .json)
  clip=$(clip_of "$name")
  if [ -z "$clip" ]; then echo "$name: clip not found (needs ../shared), skipped"; continue; fi
  for fps in 5 0; do
    score "$clip" "$truth" "$name" "$fps" "$@"
  done
done
