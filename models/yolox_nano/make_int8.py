"""Makes yolox_nano_int8.onnx: YOLOX-nano statically quantized to INT8 (weights per channel,
activations per tensor, QDQ format) with ONNX Runtime's own tooling, calibrated on frames of the
bundled traffic clips prepared exactly as the agent prepares them (aspect kept, pasted top-left
on a 114 canvas, BGR 0..255, 416 wide).

    python3 -m venv /tmp/q && /tmp/q/bin/pip install onnxruntime==1.32.0 onnx==1.23.2 opencv-python-headless==4.10.0.84 numpy sympy
    /tmp/q/bin/python models/yolox_nano/make_int8.py       (from the repository root)

Writes models/yolox_nano_int8/yolox_nano_int8.onnx; its manifest there gives the sha256.
Never part of the agent's build: the agent only loads the result.
"""
import glob
import os
import tempfile

import cv2
import numpy as np
import onnx
import onnx.version_converter
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SOURCE = os.path.join(ROOT, "models/yolox_nano/yolox_nano.onnx")
TARGET = os.path.join(ROOT, "models/yolox_nano_int8/yolox_nano_int8.onnx")
CLIPS = ["opencv4nodejs_traffic.mp4", "ozlu_input_video.mp4", "bgslibrary_video02.avi", "intel_car-detection.mp4", "degirum_TrafficHD_short.mp4"]
FRAMES_PER_CLIP = 24
WIDTH, HEIGHT = 416, 256


def prepared(frame):
    """The agent's input for a frame: scaled to fit 416x256 (a 16:9 camera's input; calibration
    needs one shape), pasted top-left on the 114 canvas."""
    h, w = frame.shape[:2]
    scale = min(WIDTH / w, HEIGHT / h)
    scaled = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    canvas = np.full((HEIGHT, WIDTH, 3), 114, np.uint8)
    canvas[: scaled.shape[0], : scaled.shape[1]] = scaled
    return canvas.transpose(2, 0, 1)[None].astype(np.float32)


def frames():
    for name in CLIPS:
        capture = cv2.VideoCapture(os.path.join(ROOT, "samples/clips", name))
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or FRAMES_PER_CLIP
        for i in np.linspace(0, total - 1, FRAMES_PER_CLIP).astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, frame = capture.read()
            if ok:
                yield prepared(frame)


class Frames(CalibrationDataReader):

    def __init__(self):
        self.inputs = iter([{"images": f} for f in frames()])

    def get_next(self):
        return next(self.inputs, None)


def main():
    os.makedirs(os.path.dirname(TARGET), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # ONNX Runtime's tooling leaves intermediate models and their weights in the working
        # directory: keep them out of the repository.
        os.chdir(tmp)
        # Per-channel weights need DequantizeLinear's axis, which exists from opset 13 on.
        opset13 = os.path.join(tmp, "opset13.onnx")
        onnx.save(onnx.version_converter.convert_version(onnx.load(SOURCE), 13), opset13)
        pre = os.path.join(tmp, "pre.onnx")
        # The symbolic shape pass cannot follow the symbolic height and width; ONNX shape inference and
        # the graph optimisation are what quantization needs.
        quant_pre_process(opset13, pre, skip_symbolic_shape=True)
        quantize_static(
            pre,
            TARGET,
            Frames(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile,
            # The head (decoupled box, objectness and class branches, then the concatenated
            # output) stays in float: quantized, objectness and class scores of small vehicles
            # collapse and counts halve (see PROVENANCE.txt); the backbone and neck carry most of
            # the work.
            nodes_to_exclude=[n.name for n in onnx.load(pre).graph.node if n.name.startswith("/head/")],
            extra_options={"CalibPercentile": 99.99},
        )
    print("wrote", TARGET)


if __name__ == "__main__":
    main()
