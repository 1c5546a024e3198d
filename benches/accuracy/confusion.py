"""Class confusion of `canh replay` crossings against a hand count: each hand-counted crossing is
paired with an unpaired crossing by Canh in the same direction within 1.5 s: one of the same class
if there is one, else the nearest in time. Vehicles crossing within a fraction of a second of each
other, as a queue leaving a stop line does, cannot be told apart by time alone (crossings carry no
position, and Canh stamps a crossing when the vehicle is seen past the line, a few frames after the
hand count's moment), so this is the reading most favourable to Canh; a class error shows where no
crossing of the right class is near.

    canh replay --input CLIP --line ... --fps N > run.jsonl
    confusion.py TRUTH.json run.jsonl     -> rows "hand class -> canh class: n", then misses and extras
"""
import collections
import json
import sys

truth = json.load(open(sys.argv[1]))
crossings = []
for line in open(sys.argv[2]):
    if line.startswith('{"topic') and '/crossing"' in line:
        crossings.append(json.loads(line)["payload"])
used, pairs, missed = set(), collections.Counter(), []
for c in truth["crossings"]:
    candidates = [
        (abs(p["stream_time_s"] - c["t"]) + (1.5 if p["class"] != c["class"] else 0.0), i)
        for i, p in enumerate(crossings)
        if i not in used and p["direction"] == c["direction"] and abs(p["stream_time_s"] - c["t"]) < 1.5
    ]
    if candidates:
        _, i = min(candidates)
        used.add(i)
        pairs[(c["class"], crossings[i]["class"])] += 1
    else:
        missed.append(c["class"])
for (hand, canh), n in sorted(pairs.items()):
    print("%s -> %s: %d" % (hand, canh, n))
print("missed by canh:", dict(collections.Counter(missed)))
print("counted by canh only:", dict(collections.Counter(p["class"] for i, p in enumerate(crossings) if i not in used)))
