"""Runs the validation scenes through the real agent (`canh replay`), as time-lapse clips: for each
scene, its smoke-free stills and then its smoke stills, each held for 10 s (20 analysed frames at
2 fps; a lookout view changes little in that time), the smoke baseline learning a map every 5 s. Prints, per scene, when smoke was suspected and
confirmed and whether the region lies on an annotated plume. After `train.sh` (its venv) and a
release build, from the repository root:

    target/train-venv/bin/python training/smoke/replay_scenes.py \
        --data ../shared/datasets/aiformankind_hpwren_smoke --canh target/release/canh

The stills of a scene were taken minutes apart in an order the file names do not give, so the
light jumps from one to the next: the grey-foreground cue sees little, and the smoke model's
baseline learns a scene under changing light, as over a day. A harder test than a steady video.
"""
import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

import scenes
import train

STILLS = 20  # of each kind, per scene
FRAMES_PER_STILL = 20
SETTINGS = "analytics_fps = 2\n[cameras.fire]\nsmoke_baseline_interval_s = 5\n"
# With --sky-masks: where each validation view's horizon (ridge line) lies, read off one image of
# it by eye, the way an installer draws a camera's masks; the sky is masked down to 0.05 above it.
HORIZON_OF_SCENE = {3: 0.40, 11: 0.50, 12: 0.47, 14: 0.47, 17: 0.47, 24: 0.50}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="the aiformankind_hpwren_smoke folder")
    parser.add_argument("--canh", required=True, type=Path, help="the canh binary")
    parser.add_argument("--fire", default="", help="more [cameras.fire] settings, TOML lines, to try")
    parser.add_argument("--sky-masks", action="store_true", help="mask each view's sky above its ridge line")
    args = parser.parse_args()
    args.data = args.data.resolve()
    images, boxes = train.dataset(args.data)
    positive = np.array([name in boxes for name in images])
    scene_of = np.array(scenes.scenes([args.data / "images" / n for n in images]))
    validation = sorted(scenes.split(list(scene_of), list(positive), np.random.default_rng(train.SEED)))
    for scene in validation:
        members = [n for n, s in zip(images, scene_of) if s == scene]
        clean = [n for n in members if n not in boxes][:STILLS]
        smoke = [n for n in members if n in boxes][:STILLS]
        sky = HORIZON_OF_SCENE[scene] - 0.05 if args.sky_masks else None
        events = replay(args, clean + smoke, "" if sky is None else f"masks = [[[0, 0], [1, 0], [1, {sky}], [0, {sky}]]]\n")
        onset = len(clean) * FRAMES_PER_STILL / 2
        plume = [boxes[n] for n in smoke]
        report = {"scene": int(scene), "smoke_free_stills": len(clean), "smoke_stills": len(smoke), "smoke_from_s": onset if smoke else None}
        for e in events:
            on_plume = any(overlaps(e["region"], b) for b in plume)
            key = "before_smoke" if e["first_evidence_s"] < onset or not smoke else ("on_plume" if on_plume else "off_plume")
            report.setdefault(key, []).append(f'{e["kind"]} {e["type"]} {e["stream_time_s"]} s {e["region"]}')
        print(json.dumps(report), flush=True)


def replay(args, stills, masks):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frame = 0
        for name in stills:
            for _ in range(FRAMES_PER_STILL):
                (tmp / f"{frame:04d}.jpg").symlink_to(args.data / "images" / name)
                frame += 1
        clip = tmp / "scene.mp4"
        subprocess.run(
            ["gst-launch-1.0", "-q", "multifilesrc", f"location={tmp}/%04d.jpg", "index=0", f"stop-index={frame - 1}", "caps=image/jpeg,framerate=2/1",
             "!", "jpegdec", "!", "videoconvert", "!", "x264enc", "!", "mp4mux", "!", "filesink", f"location={clip}"],
            check=True,
        )
        site = tmp / "site.toml"
        site.write_text(f'site = "lookout"\n[[cameras]]\nid = "scene"\nsource = "{clip}"\n{SETTINGS}{masks}{args.fire}\n')
        out = subprocess.run([str(args.canh), "replay", "--config", str(site), "--input", str(clip)], check=True, capture_output=True, text=True, env=dict(os.environ, CANH_LOG="warn"))
    return [json.loads(line)["payload"] for line in out.stdout.splitlines() if json.loads(line).get("topic", "").endswith("/fire")]


def overlaps(region, box):
    return region[0] < box[2] and box[0] < region[2] and region[1] < box[3] and box[1] < region[3]


if __name__ == "__main__":
    main()
