"""The pipeline a user would otherwise write: OpenCV decode, onnxruntime running the same
YOLOX-nano, Roboflow supervision's ByteTrack and LineZone (bottom-centre anchor).

    python3 count.py CLIP X1,Y1,X2,Y2 FPS MODEL.onnx

FPS is the analysed rate (0 = every frame). Prints one JSON line: frames, seconds, fps, in, out.
Counting follows supervision's convention; the caller maps it onto Canh's direction.
"""
import json
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort
import supervision as sv

SIZE = 416
STRIDES = (8, 16, 32)
VEHICLES = {1, 2, 3, 5, 7}  # COCO: bicycle, car, motorcycle, bus, truck
SCORE = 0.3
NMS_IOU = 0.45


def grids():
    cells, strides = [], []
    for stride in STRIDES:
        n = SIZE // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        cells.append(np.stack([xs, ys], -1).reshape(-1, 2))
        strides.append(np.full((n * n, 1), stride))
    return np.concatenate(cells), np.concatenate(strides)


def detect(session, frame, cells, strides):
    h, w = frame.shape[:2]
    ratio = min(SIZE / w, SIZE / h)
    resized = cv2.resize(frame, (int(w * ratio), int(h * ratio)), interpolation=cv2.INTER_LINEAR)
    padded = np.full((SIZE, SIZE, 3), 114, np.uint8)
    padded[: resized.shape[0], : resized.shape[1]] = resized
    blob = padded.transpose(2, 0, 1)[None].astype(np.float32)
    out = session.run(None, {session.get_inputs()[0].name: blob})[0][0]
    xy = (out[:, :2] + cells) * strides
    wh = np.exp(out[:, 2:4]) * strides
    scores = out[:, 4:5] * out[:, 5:]
    classes = scores.argmax(1)
    best = scores.max(1)
    keep = (best >= SCORE) & np.isin(classes, list(VEHICLES))
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)[keep] / ratio
    best, classes = best[keep], classes[keep]
    if len(boxes) == 0:
        return sv.Detections.empty()
    xywh = np.c_[boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]
    picked = np.array(cv2.dnn.NMSBoxes(xywh.tolist(), best.tolist(), SCORE, NMS_IOU)).reshape(-1)
    return sv.Detections(xyxy=boxes[picked], confidence=best[picked], class_id=classes[picked])


def main():
    clip, line, fps, model = sys.argv[1], [float(v) for v in sys.argv[2].split(",")], float(sys.argv[3]), sys.argv[4]
    options = ort.SessionOptions()
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    capture = cv2.VideoCapture(clip)
    source_fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    w, h = capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)
    step = max(1, round(source_fps / fps)) if fps > 0 else 1
    tracker = sv.ByteTrack(frame_rate=round(source_fps / step))
    zone = sv.LineZone(start=sv.Point(line[0] * w, line[1] * h), end=sv.Point(line[2] * w, line[3] * h), triggering_anchors=[sv.Position.BOTTOM_CENTER])
    cells, strides = grids()
    analysed, index = 0, 0
    started = time.perf_counter()
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % step == 0:
            detections = tracker.update_with_detections(detect(session, frame, cells, strides))
            zone.trigger(detections)
            analysed += 1
        index += 1
    seconds = time.perf_counter() - started
    print(json.dumps({"frames": analysed, "seconds": seconds, "fps": analysed / seconds, "in": zone.in_count, "out": zone.out_count}))


if __name__ == "__main__":
    main()
