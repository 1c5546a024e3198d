#!/usr/bin/env bash
# How the counts hold on footage Canh was not tuned on, as far as one hand-counted clip allows:
# the Vietnamese junction (../shared) decoded and encoded again at 1280, 960 and 640 px wide, with
# two x264 settings each (a second encode changes every block's noise, as another camera does),
# scored as benches/accuracy/run.sh scores (common.sh) at 5 analysed fps and at every frame against
# the same hand count (crossings are at the same times, the line at the same normalized place).
# The last line says how many of the runs are within the tolerance.
#
#   benches/accuracy/variants.sh [EXTRA canh replay ARGS...]   (needs target/release/canh, gst-launch-1.0)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CANH_LOG=warn
. benches/accuracy/common.sh
clip=../shared/clips/traffic/vn_thanglm20_traffic_ptz.mp4
truth=samples/groundtruth/vn_thanglm20_traffic_ptz.json
if [ ! -f "$clip" ]; then echo "skipped: $clip is absent (it may not ship; it is read from ../shared)"; exit 0; fi
out=target/bench/variants
mkdir -p "$out"
runs=0; within=0
for size in 1280x720 960x540 640x360; do
  # The same pipeline as the test the_junction_encoded_again_holds_in_most_runs (replay_accuracy.rs).
  # threads=1: the same file wherever x264 and GStreamer are the same versions (Debian 12's here).
  for encode in "fast 2000" "faster 4000"; do
    read -r preset kbps <<<"$encode"
    name="vn_${size%x*}_${preset}_${kbps}k"
    if [ ! -f "$out/$name.mp4" ]; then
      gst-launch-1.0 -q filesrc location="$clip" ! decodebin ! videoconvert ! videoscale \
        ! "video/x-raw,width=${size%x*},height=${size#*x}" ! x264enc speed-preset="$preset" bitrate="$kbps" threads=1 \
        ! mp4mux ! filesink location="$out/$name.part.mp4"
      # Only a whole encode is kept: a failed or interrupted one is made again next time.
      mv "$out/$name.part.mp4" "$out/$name.mp4"
    fi
    for fps in 5 0; do
      shown=$(score "$out/$name.mp4" "$truth" "$name" "$fps" "$@")
      echo "$shown"
      runs=$((runs + 1))
      case "$shown" in *" ok "*) within=$((within + 1)) ;; esac
    done
  done
done
echo "$within of $runs runs within the tolerance"
