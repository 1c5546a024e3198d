"""The hand count of a clip mirrored left to right: the same crossings, the line mirrored.

    mirrored.py TRUTH.json > MIRRORED.json

Mirroring turns the line's walker round, which would swap `in` and `out`; its ends are swapped as
well, which turns it back, so each crossing keeps its direction and frame. The line's `name`, the
`notes` and each crossing's `note` still say where things were in the clip as filmed.
"""
import json
import sys

truth = json.load(open(sys.argv[1]))
line = truth["line"]
line["p1"], line["p2"] = [round(1 - line["p2"][0], 6), line["p2"][1]], [round(1 - line["p1"][0], 6), line["p1"][1]]
truth["mirrored"] = "line mirrored left to right by benches/accuracy/mirrored.py (ends swapped, so directions hold); notes are the clip's as filmed"
json.dump(truth, sys.stdout, indent=1)
