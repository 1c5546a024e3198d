#!/usr/bin/env bash
# Canh against the pipeline a user would otherwise write (benches/reference/count.py: OpenCV
# decode, onnxruntime with the same YOLOX-nano, supervision 0.30.9's ByteTrack and LineZone), on
# the hand-counted clips of samples/groundtruth (those that may not ship read from ../shared), at
# every frame and at 5 analysed fps, one after the other on this machine. Prints a table and
# writes target/bench-reference.json.
#
#   benches/reference.sh        (needs target/release/canh; sets up target/bench/venv from PyPI once)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench/venv
if [ ! -x "$venv/bin/python" ]; then
  echo "[reference] setting up $venv from PyPI (once)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q supervision==0.30.9 opencv-python-headless==4.10.0.84 onnxruntime==1.32.0
fi
export CANH_LOG=warn
rm -f target/bench-reference.rows
printf '%-24s %4s %10s %10s %6s %12s %12s %8s\n' clip fps canh_fps ref_fps ratio canh_in/out ref_in/out truth
for truth in samples/groundtruth/*.json; do
  name=$(basename "$truth" .json)
  # Clips that may not ship (the Vietnamese junction) are read from ../shared, when it is there.
  clip=$(ls samples/clips/"$name".* ../shared/clips/traffic/"$name".* 2>/dev/null | head -n1 || true)
  if [ -z "$clip" ]; then echo "[reference] $name: clip absent (needs ../shared), skipped"; continue; fi
  line=$(python3 -c "import json,sys; l=json.load(open(sys.argv[1]))['line']; print(','.join(str(v) for v in l['p1']+l['p2']))" "$truth")
  for fps in 0 5; do
    canh=$(target/release/canh replay --input "$clip" --line "$line" --fps "$fps" --no-detect-zoom | tail -n1)
    ref=$("$venv/bin/python" -W ignore benches/reference/count.py "$clip" "$line" "$fps" models/yolox_nano/yolox_nano.onnx)
    python3 benches/reference/compare.py row "$truth" "$canh" "$ref" "$name" "$fps"
  done
done
python3 benches/reference/compare.py table
