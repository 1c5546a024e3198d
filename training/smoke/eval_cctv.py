"""How often the shipped smoke model reaches its threshold inside the labelled smoke boxes of the
CCTV fire/smoke set (`../shared/datasets/cctv_fire_smoke`, evaluation only: never train on it),
split by how dark the smoke is. No baseline: each image alone, so this measures whether the
model responds to dark smoke, not its false alarms (the set has no smoke-free images). From the
repository root, in a virtual environment with `requirements.txt`:

    python training/smoke/eval_cctv.py --data ../shared/datasets/cctv_fire_smoke
"""
import argparse
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

SMOKE_CLASS = "2"  # data.yaml: Fire, default, smoke
DARK_BELOW = 100  # mean brightness (HSV V, 0..255) inside the box
CELL_PX = 16
WIDTH_PX = 416


def heat_map(session, image):
    """The model's cells for `image` as the agent feeds it (416 px wide, top-left on grey 114)."""
    height = round(image.shape[0] * WIDTH_PX / image.shape[1])
    small = cv2.resize(image, (WIDTH_PX, height), interpolation=cv2.INTER_AREA)
    canvas = np.full(((height + 31) // 32 * 32, WIDTH_PX, 3), 114, np.uint8)
    canvas[:height] = small
    cells = session.run(None, {session.get_inputs()[0].name: canvas.transpose(2, 0, 1)[None].astype(np.float32)})[0].squeeze()
    return cells[: -(-height // CELL_PX)], small


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--model", default=Path("models/smoke_cells/smoke_cells.onnx"), type=Path)
    parser.add_argument("--threshold", default=0.9894, type=float, help="the manifest's score_threshold")
    args = parser.parse_args()
    session = ort.InferenceSession(str(args.model))
    found = {"dark": [], "lighter": []}
    for path in sorted(args.data.glob("*/images/*")):
        labels = path.parent.parent / "labels" / (path.stem + ".txt")
        rows = [line.split() for line in labels.read_text().splitlines()] if labels.exists() else []
        boxes = [list(map(float, r[1:5])) for r in rows if r and r[0] == SMOKE_CLASS]
        if not boxes:
            continue
        cells, small = heat_map(session, cv2.imread(str(path)))
        rows_px, cols_px = small.shape[:2]
        for cx, cy, w, h in boxes:
            x1, y1 = max(int((cx - w / 2) * cols_px), 0), max(int((cy - h / 2) * rows_px), 0)
            x2, y2 = max(int((cx + w / 2) * cols_px), x1 + 1), max(int((cy + h / 2) * rows_px), y1 + 1)
            brightness = cv2.cvtColor(small[y1:y2, x1:x2], cv2.COLOR_BGR2HSV)[..., 2].mean()
            inside = cells[y1 // CELL_PX : -(-y2 // CELL_PX), x1 // CELL_PX : -(-x2 // CELL_PX)]
            found["dark" if brightness < DARK_BELOW else "lighter"].append(inside.size > 0 and inside.max() >= args.threshold)
    for kind, hits in found.items():
        print(f"{kind} smoke boxes: a cell at the threshold in {sum(hits)} of {len(hits)}")


if __name__ == "__main__":
    main()
