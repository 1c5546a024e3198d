#!/usr/bin/env bash
# Canh against the pipeline a user would otherwise write (benches/reference/count.py: OpenCV
# decode, onnxruntime with the same YOLOX-nano, supervision 0.30.9's ByteTrack and LineZone), on
# the hand-counted clips of samples/groundtruth, at every frame and at 5 analysed fps, one after
# the other on this machine. Prints a table and writes target/bench-reference.json.
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
results=()
printf '%-24s %4s %10s %10s %6s %12s %12s %8s\n' clip fps canh_fps ref_fps ratio canh_in/out ref_in/out truth
for truth in samples/groundtruth/*.json; do
  name=$(basename "$truth" .json)
  clip=$(ls samples/clips/"$name".* | head -n1)
  line=$(python3 -c "import json,sys; l=json.load(open(sys.argv[1]))['line']; print(','.join(str(v) for v in l['p1']+l['p2']))" "$truth")
  for fps in 0 5; do
    canh=$(target/release/canh replay --input "$clip" --line "$line" --fps "$fps" | tail -n1)
    ref=$("$venv/bin/python" benches/reference/count.py "$clip" "$line" "$fps" models/yolox_nano/yolox_nano.onnx)
    row=$(python3 - "$truth" "$canh" "$ref" "$name" "$fps" <<'PY'
import json, sys
truth = json.load(open(sys.argv[1]))
t_in = sum(1 for c in truth["crossings"] if c["direction"] == "in")
t_out = sum(1 for c in truth["crossings"] if c["direction"] == "out")
canh, ref = json.loads(sys.argv[2]), json.loads(sys.argv[3])
c_in, c_out = sum(canh["lines"][0]["in"].values()), sum(canh["lines"][0]["out"].values())
# supervision counts "in" for an anchor crossing from the right of start->end to its left: the
# opposite of Canh's convention (left to right of the walker is "in").
r_in, r_out = ref["out"], ref["in"]
err = lambda a, b: abs(a - t_in) + abs(b - t_out)
row = {"clip": sys.argv[4], "fps": int(sys.argv[5]), "canh_fps": canh["fps"], "reference_fps": ref["fps"],
       "canh": [c_in, c_out], "reference": [r_in, r_out], "truth": [t_in, t_out],
       "canh_error": err(c_in, c_out), "reference_error": err(r_in, r_out)}
print(json.dumps(row))
PY
)
    results+=("$row")
    python3 -c "
import json,sys
r=json.loads(sys.argv[1])
print('%-24s %4d %10.1f %10.1f %5.1fx %12s %12s %8s' % (r['clip'], r['fps'], r['canh_fps'], r['reference_fps'], r['canh_fps']/r['reference_fps'], '%d/%d' % tuple(r['canh']), '%d/%d' % tuple(r['reference']), '%d/%d' % tuple(r['truth'])))
" "$row"
  done
done
printf '%s\n' "${results[@]}" | python3 -c "
import json,sys
rows=[json.loads(l) for l in sys.stdin]
for fps in (0, 5):
    sel=[r for r in rows if r['fps']==fps]
    print('fps %d: counting error (|in|+|out| off the hand counts, all clips): canh %d, reference %d; median speed ratio %.1fx' % (fps, sum(r['canh_error'] for r in sel), sum(r['reference_error'] for r in sel), sorted(r['canh_fps']/r['reference_fps'] for r in sel)[len(sel)//2]))
json.dump(rows, open('target/bench-reference.json','w'), indent=1)
print('wrote target/bench-reference.json')
"
