"""Per-direction, per-class-group counts of `canh replay` against a hand count.

    score.py TRUTH.json CANH_SUMMARY_LINE                   -> JSON: one row per (direction, group), a verdict (5 fps)
    score.py TRUTH.json CANH_SUMMARY_LINE --show CLIP FPS   -> the same as one line of text

Class groups: two-wheelers (motorcycle, bicycle) and four-wheelers (car, bus, truck); a group's
tolerance is 10% of its hand count, at least 1 (the accuracy tests use the same rule). A crossing
by hand after the clip's last analysed frame at FPS is not expected (at the clip's end the agent
counts a vehicle seen past the line on one analysed frame: LineCounter::end); at FPS, one in the
clip's last 1/FPS s is not either, as where the analysed frames fall is not known here.
"""
import json
import math
import sys

GROUPS = {"two_wheelers": {"motorcycle", "bicycle"}, "four_wheelers": {"car", "bus", "truck"}}


def group_of(label):
    return next((g for g, labels in GROUPS.items() if label in labels), "other")


def observable(crossing, truth, fps):
    """Whether the first analysed frame at or after the crossing falls within the clip: at FPS,
    one analysis period before the clip's last frame (the analysed frames' phase is not known)."""
    at_s = crossing["frame"] / truth["fps"]
    first_s = at_s if not fps else math.ceil(at_s * fps) / fps + 1 / fps
    return first_s <= (truth["frames"] - 1) / truth["fps"] + 1e-6


def score(truth, summary, fps):
    rows = []
    for direction in ("in", "out"):
        for group in GROUPS:
            by_hand = [c for c in truth["crossings"] if c["direction"] == direction and group_of(c["class"]) == group]
            want = sum(1 for c in by_hand if observable(c, truth, fps))
            got = sum(n for label, n in summary["lines"][0][direction].items() if group_of(label) == group)
            tolerance = max(1.0, 0.1 * want)
            rows.append({"direction": direction, "group": group, "all": len(by_hand), "hand": want, "canh": got, "ok": abs(got - want) <= tolerance})
    return rows


if __name__ == "__main__":
    truth = json.load(open(sys.argv[1]))
    summary = json.loads(sys.argv[2])
    fps = int(sys.argv[5]) if sys.argv[3:4] == ["--show"] else 5
    rows = score(truth, summary, fps)
    ok = all(r["ok"] for r in rows)
    if sys.argv[3:4] == ["--show"]:
        cells = " ".join("%s/%s %d/%d%s" % (r["direction"], r["group"], r["canh"], r["hand"], "" if r["ok"] else "!") for r in rows if r["hand"] or r["canh"])
        print("%-28s fps %-2s %-4s %s  (%.1f analysed fps)" % (sys.argv[4], sys.argv[5], "ok" if ok else "FAIL", cells, summary.get("analysis_fps", 0)))
    else:
        print(json.dumps({"rows": rows, "ok": ok, "analysis_fps": summary.get("analysis_fps")}))
