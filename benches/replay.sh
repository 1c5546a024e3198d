#!/usr/bin/env bash
# Throughput of `canh replay` on each bundled clip, at 5 analysed fps and at every frame.
# Counts are on the hand-counted lines of samples/groundtruth. Needs target/release/canh.
set -euo pipefail
cd "$(dirname "$0")/.."
printf '%-28s %5s %8s %8s %10s  %s\n' clip fps frames seconds frames/s counts
for truth in samples/groundtruth/*.json; do
  name=$(basename "$truth" .json)
  clip=$(ls samples/clips/"$name".* | head -n1)
  line=$(python3 -c "import json,sys; l=json.load(open(sys.argv[1]))['line']; print(','.join(str(v) for v in l['p1']+l['p2']))" "$truth")
  for fps in 5 0; do
    summary=$(CANH_LOG=warn target/release/canh replay --input "$clip" --line "$line" --fps "$fps" --no-detect-zoom | tail -n1)
    python3 -c "
import json,sys
s=json.loads(sys.argv[1]); l=s['lines'][0]
print('%-28s %5s %8d %8.1f %10.1f  in %s out %s' % (sys.argv[2], sys.argv[3], s['frames'], s['seconds'], s['fps'], sum(l['in'].values()), sum(l['out'].values())))
" "$summary" "$name" "$fps"
  done
done
