"""Rows and totals of benches/reference.sh.

    compare.py row TRUTH.json CANH_SUMMARY REFERENCE_RESULT CLIP FPS   -> one JSON row
    compare.py table < rows                                            -> totals, and the JSON file
"""
import json
import sys


def row(truth_path, canh, ref, clip, fps):
    truth = json.load(open(truth_path))
    t_in = sum(1 for c in truth["crossings"] if c["direction"] == "in")
    t_out = sum(1 for c in truth["crossings"] if c["direction"] == "out")
    canh, ref = json.loads(canh), json.loads(ref)
    c_in, c_out = sum(canh["lines"][0]["in"].values()), sum(canh["lines"][0]["out"].values())
    # supervision's LineZone counts "in" for a crossing from the right of start->end to its left,
    # the opposite of Canh's convention (from the walker's left to right is "in").
    r_in, r_out = ref["out"], ref["in"]
    error = lambda a, b: abs(a - t_in) + abs(b - t_out)
    return {
        "clip": clip, "fps": int(fps), "canh_fps": canh["analysis_fps"], "reference_fps": ref["fps"],
        "canh": [c_in, c_out], "reference": [r_in, r_out], "truth": [t_in, t_out],
        "canh_error": error(c_in, c_out), "reference_error": error(r_in, r_out),
    }


def show(r):
    counts = lambda pair: "%d/%d" % tuple(pair)
    print("%-24s %4d %10.1f %10.1f %5.1fx %12s %12s %8s" % (r["clip"], r["fps"], r["canh_fps"], r["reference_fps"], r["canh_fps"] / r["reference_fps"], counts(r["canh"]), counts(r["reference"]), counts(r["truth"])))


if sys.argv[1] == "row":
    r = row(*sys.argv[2:7])
    show(r)
    with open("target/bench-reference.rows", "a") as rows:
        rows.write(json.dumps(r) + "\n")
else:
    rows = [json.loads(line) for line in open("target/bench-reference.rows")]
    for fps in (0, 5):
        sel = [r for r in rows if r["fps"] == fps]
        ratios = sorted(r["canh_fps"] / r["reference_fps"] for r in sel)
        print("analysed fps %s: counting error (|in| + |out| off the hand counts, all clips): canh %d, reference %d; speed ratio canh/reference median %.1fx (%.1fx to %.1fx)"
              % (fps or "every frame", sum(r["canh_error"] for r in sel), sum(r["reference_error"] for r in sel), ratios[len(ratios) // 2], ratios[0], ratios[-1]))
    json.dump(rows, open("target/bench-reference.json", "w"), indent=1)
    print("wrote target/bench-reference.json")
