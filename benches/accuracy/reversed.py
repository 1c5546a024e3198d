"""The hand count of a clip played backwards: each crossing the other way, at the mirrored frame.

    reversed.py TRUTH.json FRAMES > REVERSED.json    (FRAMES: how many frames the clip decodes to)
"""
import json
import sys

truth = json.load(open(sys.argv[1]))
frames = int(sys.argv[2])
other = {"in": "out", "out": "in"}
crossings = []
for c in truth["crossings"]:
    frame = frames - 1 - c["frame"]
    crossings.append({**c, "direction": other[c["direction"]], "frame": frame, "t": round(frame / truth["fps"], 3)})
truth["crossings"] = sorted(crossings, key=lambda c: c["frame"])
truth["frames"] = frames
for swapped in (truth["line"], truth["totals"], truth["totals"]["by_direction_and_class"]):
    swapped["in"], swapped["out"] = swapped["out"], swapped["in"]
json.dump(truth, sys.stdout, indent=1)
