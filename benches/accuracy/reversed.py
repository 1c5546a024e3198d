"""The hand count of a clip played backwards: each crossing the other way, at the mirrored frame.

    reversed.py TRUTH.json FRAMES > REVERSED.json    (FRAMES: how many frames the clip decodes to)

A crossing's frame is the first past the line, so played backwards the first past it is the
forward frame before: frame f becomes FRAMES - f. Crossings that were close to the clip's end come
close to its start, where the first frame still shows the vehicle before the line. The line, and
the frames in `ambiguous` and `notes`, are the forward clip's.
"""
import json
import sys

truth = json.load(open(sys.argv[1]))
frames = int(sys.argv[2])
if frames != truth["frames"]:
    sys.exit(f"{sys.argv[1]}: the clip decodes to {frames} frames, the hand count says {truth['frames']}: its frames would not mirror")
other = {"in": "out", "out": "in"}
crossings = []
for c in truth["crossings"]:
    frame = frames - c["frame"]
    if frame < frames:
        crossings.append({**c, "direction": other[c["direction"]], "frame": frame, "t": round(frame / truth["fps"], 3)})
truth["crossings"] = sorted(crossings, key=lambda c: c["frame"])
for swapped in (truth["totals"], truth["totals"]["by_direction_and_class"]):
    swapped["in"], swapped["out"] = swapped["out"], swapped["in"]
truth["played_backwards"] = "crossings mirrored by benches/accuracy/reversed.py; the line, ambiguous and notes are the forward clip's"
json.dump(truth, sys.stdout, indent=1)
