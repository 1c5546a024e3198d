# Shared by run.sh and variants.sh (sourced, from the repository root): one replay scored against
# a hand count.

# The clip of a hand count named NAME: from samples/clips, or ../shared/clips/traffic for the clips
# that may not ship; nothing when it is absent.
clip_of() {
  ls samples/clips/"$1".* ../shared/clips/traffic/"$1".* 2>/dev/null | head -n1 || true
}

# The counting line of a hand count (samples/groundtruth/*.json) as `canh replay --line` takes it.
line_of() {
  python3 -c "import json,sys; l=json.load(open(sys.argv[1]))['line']; print(','.join(str(v) for v in l['p1']+l['p2']))" "$1"
}

# score CLIP TRUTH NAME FPS [EXTRA canh replay ARGS...]: replays CLIP at FPS across TRUTH's line
# and prints one line, NAME and FPS, the counts against the hand count, and ` ok ` when all are
# within the tolerance.
score() {
  local clip=$1 truth=$2 name=$3 fps=$4 line summary
  shift 4
  # `|| return`: in a command substitution (variants.sh) `set -e` no longer stops at a failure.
  line=$(line_of "$truth") || return
  summary=$(target/release/canh replay --input "$clip" --line "$line" --fps "$fps" "$@" | tail -n1) || return
  python3 benches/accuracy/score.py "$truth" "$summary" --show "$name" "$fps"
}
