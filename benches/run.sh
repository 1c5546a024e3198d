#!/usr/bin/env bash
# Every benchmark, one after the other (run on an otherwise idle box): inference alone, fire
# analytics, K cameras over RTSP with the decode and inference limits, the full disk outbox,
# `canh replay` on each bundled clip, and Canh against the reference Python pipeline. Results in target/bench-*.json.
#
#   benches/run.sh            (after scripts/setup.sh; about 26 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p canh --bench inference
cargo bench -p canh --bench inference -- smoke_cells
cargo bench -p canh --bench fire
cargo bench -p canh --bench streams
cargo bench -p canh --bench streams -- 30 --clip intel_car-detection.mp4 --cameras 8,10,12
cargo bench -p canh --bench outbox
benches/replay.sh
benches/reference.sh
