#!/usr/bin/env python3
"""The README's Accuracy tables, measured now with `target/release/canh`, as Markdown on stdout:
counts against every hand count (at 5 analysed fps and at every frame), the traffic rules on the
sample sites, and fire and smoke on the fire clips and on clips without fire; headed by the date,
the machine and the commit. The Performance table comes from `benches/run.sh`.

    benches/readme.py > /tmp/tables.md      (after scripts/setup.sh; about 5 minutes on 2 cores)

Clips that may not ship are read from ../shared (rows marked "absent" without it).
"""
import datetime
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SHARED = os.path.join(ROOT, "..", "shared")
CANH = os.path.join(ROOT, "target", "release", "canh")
sys.path.insert(0, os.path.join(ROOT, "benches", "accuracy"))
import score  # noqa: E402  (benches/accuracy/score.py: the accuracy tests' rule)

NO_FIRE_CLIPS = [l.strip() for l in open(os.path.join(ROOT, "samples", "clips", "without_fire.txt")) if l.strip() and not l.startswith("#")]


def replay(*args):
    """(payloads by kind, summary) of one `canh replay`."""
    out = subprocess.run([CANH, "replay", *args], cwd=ROOT, check=True, capture_output=True, text=True, env={**os.environ, "CANH_LOG": "warn"}).stdout
    lines = out.strip().splitlines()
    payloads = {}
    for line in lines[:-1]:
        message = json.loads(line)
        if "payload" in message:
            payloads.setdefault(message["topic"].rsplit("/", 1)[-1], []).append(message["payload"])
    return payloads, json.loads(lines[-1])


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    mem_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return "%s, %d cores, %.0f GiB; commit %s" % (cpu, os.cpu_count(), mem_kb / 2**20, commit)


def clip_of(name):
    found = glob.glob(os.path.join(ROOT, "samples", "clips", name + ".*")) + glob.glob(os.path.join(SHARED, "clips", "traffic", name + ".*"))
    return found[0] if found else None


def counts_table():
    print("| clip | group, direction | by hand (seen at 5 fps, at every frame) | 5 fps | every frame |")
    print("|---|---|---|---|---|")
    for truth_path in sorted(glob.glob(os.path.join(ROOT, "samples", "groundtruth", "*.json"))):
        name = os.path.basename(truth_path)[:-5]
        clip = clip_of(name)
        if clip is None:
            print("| %s | absent (needs ../shared) | | | |" % name)
            continue
        truth = json.load(open(truth_path))
        line = ",".join(str(v) for v in truth["line"]["p1"] + truth["line"]["p2"])
        rows = {fps: score.score(truth, replay("--input", clip, "--line", line, "--fps", str(fps))[1], fps) for fps in (5, 0)}
        for at_5, every in zip(rows[5], rows[0]):
            if not (every["all"] or at_5["canh"] or every["canh"]):
                continue
            seen = (at_5["hand"], every["hand"])
            hand = str(every["all"]) + ("" if seen == (every["all"],) * 2 else " (%d, %d)" % seen)
            mark = lambda r: "%d%s" % (r["canh"], "" if r["ok"] else " ✗")
            print("| %s | %s %s | %s | %s | %s |" % (name, at_5["group"].replace("_", "-"), at_5["direction"], hand, mark(at_5), mark(every)))
    print("\n✗: outside ±10 % of the hand count (at least ±1). `intel_car-detection` (top-down) is reported")
    print("without a threshold: the model does not see cars from straight above.")


def rule_row(rule, payloads):
    alerts = [p for p in payloads if p["rule"] == rule and p["type"] == "alert"]
    ends = [p for p in payloads if p["rule"] == rule and p["type"] == "end"]
    text = "%d alert%s" % (len(alerts), "" if len(alerts) == 1 else "s")
    if alerts:
        times = [a["stream_time_s"] for a in alerts]
        text += (" at %.1f s" % times[0]) if len(times) == 1 else (", %.1f to %.1f s" % (min(times), max(times)))
        speeds = [a["measured"]["speed_kmh"] for a in alerts if "speed_kmh" in a["measured"]]
        if speeds:
            text += ", %.0f to %.0f km/h" % (min(speeds), max(speeds))
        dwell = [a["measured"]["dwell_s"] for a in alerts if "dwell_s" in a["measured"]]
        if dwell:
            text += ", after %s s" % " / ".join("%.1f" % d for d in dwell)
    for end in ends:
        stood = end["measured"].get("dwell_s", end["measured"].get("congested_s"))
        text += "; `end` at %.1f s (stood %.1f s)" % (end["stream_time_s"], stood)
    return text


def rules_table():
    print("| site | rule | result |")
    print("|---|---|---|")
    sites = [
        ("arterial", "opencv4nodejs_traffic.mp4", ["--signal-log", "samples/sites/arterial-signal.jsonl"]),
        ("street", "ozlu_input_video.mp4", []),
    ]
    for site, clip, extra in sites:
        payloads, summary = replay("--config", "samples/sites/%s.toml" % site, "--input", "samples/clips/" + clip, *extra)
        for rule in summary["violations"]:
            print("| %s | `%s` | %s |" % (site, rule, rule_row(rule, payloads.get("violation", []))))


def fire_row(name, payloads):
    events = payloads.get("fire", [])
    def first(stage):
        found = [e for e in events if e["type"] == stage]
        return ", ".join("%s at %.1f s" % (e["kind"], e["stream_time_s"]) for e in found[:1]) or "none"
    return "| %s | %s | %s |" % (name, first("suspected"), first("confirmed"))


def lookout_clip(work, framerate):
    """The HPWREN lookout view of `agent/tests/fire.rs`: 12 frames before a fire starts and 16
    after, at `framerate` (a GStreamer fraction)."""
    images = os.path.join(SHARED, "datasets", "aiformankind_hpwren_smoke", "images")
    if not os.path.isdir(images):
        return None
    for i in range(28):
        still = "ck0rp9ceo4fft0838x66r246f" if i < 12 else "ck0t1zwemkseu08636i7fpksi"
        shutil.copy(os.path.join(images, still + ".jpeg"), os.path.join(work, "%03d.jpg" % i))
    clip = os.path.join(work, "lookout.mp4")
    subprocess.run(["gst-launch-1.0", "-q", "multifilesrc", "location=%s/%%03d.jpg" % work, "index=0", "stop-index=27", "caps=image/jpeg,framerate=" + framerate,
                    "!", "jpegdec", "!", "videoconvert", "!", "x264enc", "!", "mp4mux", "!", "filesink", "location=" + clip], check=True)
    return clip


def fire_table():
    print("| clip | first `suspected` | first `confirmed` |")
    print("|---|---|---|")
    shared = [("fire_smoke", "spacewalk01_input_carfire.mp4"), ("fire_smoke", "cctv_office_fire_4fps.mp4"), ("fire_smoke", "unimi_smoke3_7fps.mp4"),
              ("fire_smoke", "cctv_fog_cannon_4fps.mp4"), ("negative", "dfire_lookout_glare_haze_4fps.mp4"), ("traffic", "vn_thanglm20_traffic_ptz.mp4")]
    for folder, name in shared:
        clip = os.path.join(SHARED, "clips", folder, name)
        print(fire_row(name, replay("--input", clip, "--fire")[0]) if os.path.exists(clip) else "| %s | absent (needs ../shared) | |" % name)
    lookouts = [("2/1", "smoke_baseline_interval_s = 0.25", "HPWREN lookout at 2 fps, 6 s before and 8 s after a fire starts (baseline learning every frame)"),
                ("1/60", "", "HPWREN lookout as stills a minute apart, 12 before the fire and 16 after (default settings)")]
    for framerate, settings, name in lookouts:
        with tempfile.TemporaryDirectory() as work:
            clip = lookout_clip(work, framerate)
            if clip is None:
                print("| HPWREN lookout | absent (needs ../shared) | |")
                continue
            site = os.path.join(work, "site.toml")
            with open(site, "w") as f:
                f.write('site = "lookout"\n[[cameras]]\nid = "replay"\nsource = "%s"\nanalytics_fps = 2\n[cameras.fire]\n%s\n' % (clip, settings))
            print(fire_row(name, replay("--config", site, "--input", clip)[0]))
    quiet = [name for name in NO_FIRE_CLIPS if not replay("--input", os.path.join(ROOT, "samples", "clips", name), "--fire")[0].get("fire")]
    print("| %d clips without fire (%s) | %d raise nothing | |" % (len(NO_FIRE_CLIPS), ", ".join(NO_FIRE_CLIPS), len(quiet)))


if __name__ == "__main__":
    if not os.access(CANH, os.X_OK):
        sys.exit("benches/readme.py: build first (scripts/setup.sh): %s is missing" % CANH)
    print("Measured %s on %s.\n" % (datetime.date.today().isoformat(), machine()))
    print("#### Counts (`samples/groundtruth`, the line of each hand count)\n")
    counts_table()
    print("\n#### Traffic rules (`samples/sites`, 5 analysed fps unless the site says otherwise)\n")
    rules_table()
    print("\n#### Fire and smoke (`canh replay --fire`: whole frame, default settings, 2 analysed fps)\n")
    fire_table()
