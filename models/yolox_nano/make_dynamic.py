"""Declares the input's height and width, and the output's anchor count, symbolic, so that
ONNX Runtime accepts any input whose sides are multiples of 32 (up to 416): a 16:9 frame then
runs at 416x256 instead of 416x416 with 40 % padding. The graph already computes every shape
from its input (Reshape to -1, Resize by scale); weights and operators are unchanged.

    python3 make_dynamic.py yolox_nano.onnx      (rewrites the file in place; needs `onnx`)
"""
import sys

import onnx

path = sys.argv[1]
model = onnx.load(path)
dims = model.graph.input[0].type.tensor_type.shape.dim
dims[2].dim_param, dims[3].dim_param = "height", "width"
model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "anchors"
onnx.checker.check_model(model)
onnx.save(model, path)
