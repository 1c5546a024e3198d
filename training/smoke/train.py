"""Trains Canh's smoke model from the AI For Mankind / HPWREN smoke set and writes the ONNX file,
its manifest and a metrics report. Run through `training/smoke/train.sh`.

The model is a smoke heat map: P(smoke) for every 16x16-pixel cell of the analysed frame. It is
YOLOX-nano (Apache-2.0, the detector Canh ships), frozen up to the feature pyramid that feeds its
detection head, with a small head trained here on the pyramid's stride-16 map and its stride-32
map brought up to stride 16 (384 features a cell; each cell sees far beyond itself). Training
only the head is what 2 CPU cores do in minutes, and it cannot over-fit 3,292 images the way
re-training the trunk would. The head's input standardisation is folded into its first layer,
so the exported graph is trunk + head, one file, taking frames as YOLOX-nano takes them.

Two alternatives were measured first and dropped (ROC-AUC of smoke vs clean across scenes):
classifying square tiles of half the frame height, on ShuffleNetV2-OnFire's pooled features
(0.67) and on YOLOX-nano's pooled pyramid (0.68), against 0.81 for the cells. A small, distant
plume is a few percent of a tile and is averaged away; a cell is mostly plume or mostly not.
"""
import argparse
import hashlib
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import scenes

SEED = 20261123
FRAME_WIDTH = 416  # the agent's analysed frame: YOLOX-nano's input width
SIZE_MULTIPLE = 32  # the frame is padded (bottom, right) to a multiple of this, as the agent does
PAD_VALUE = 114
STRIDE = 16
TRUNK_INPUT = "images"
TRUNK_STRIDE_16 = "/backbone/C3_n3/conv3/act/Mul_output_0"
TRUNK_STRIDE_32 = "/backbone/C3_n4/conv3/act/Mul_output_0"
# A cell is smoke when its centre is in the plume's box (or, for a box smaller than a cell, it
# is the nearest cell); clean when it is further than MARGIN_PX from the box; else left out.
MARGIN_PX = 24
# Clean cells far outnumber smoke cells (130 to 1): train on this share of them (classes are
# weighted to balance anyway).
CLEAN_SHARE = 0.15
HIDDEN = 32
EPOCHS = 10
WEIGHT_DECAY = 1e-3
# A camera learns how its own view scores (haze, a ridge, a cloud bank the model likes): per
# cell, this quantile of the logit over frames seen before. A cell counts as smoke only when it
# stands BASELINE_MARGIN logits above that. The agent does the same (`[cameras.fire]`
# `smoke_baseline_*`); here the frames before are the scene's other smoke-free images.
BASELINE_QUANTILE = 0.98
BASELINE_MARGIN = 2.0
# The operating point: the cell score that this share of smoke-free training images reach
# somewhere above their scene's baseline, out of fold.
IMAGE_FALSE_POSITIVE_TARGET = 0.03
# Thresholds the report also gives validation figures at.
CURVE = [0.5, 0.9, 0.99, 0.999]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="the aiformankind_hpwren_smoke folder")
    parser.add_argument("--trunk", required=True, type=Path, help="models/yolox_nano/yolox_nano.onnx")
    parser.add_argument("--out", required=True, type=Path, help="folder for the model, manifest and metrics")
    parser.add_argument("--cache", type=Path, help="folder to keep cell features in between runs")
    args = parser.parse_args()
    started = time.time()
    rng = np.random.default_rng(SEED)

    images, boxes = dataset(args.data)
    positive = np.array([name in boxes for name in images])
    print(f"{len(images)} images, {positive.sum()} with a smoke box")
    scene_of = np.array(scenes.scenes([args.data / "images" / n for n in images]))
    validation_scenes = scenes.split(list(scene_of), list(positive), rng)
    is_val = np.isin(scene_of, sorted(validation_scenes))
    print(f"{len(set(scene_of))} scenes; validation: {len(validation_scenes)} scenes, {is_val.sum()} images ({np.sum(is_val & positive)} with smoke)")

    features, labels, image_index = cell_features(args, images, boxes)
    sampled = (labels == 1) | ((labels == 0) & (rng.random(len(labels)) < CLEAN_SHARE))
    train = sampled & ~is_val[image_index]
    print(f"cells: {len(labels)}; training on {train.sum()} ({labels[train].sum()} smoke)")

    threshold = choose_threshold(features, labels, image_index, scene_of, is_val, sampled, rng)
    head = fit_head(features[train], labels[train], rng)
    scores = np.zeros(len(labels), np.float32)
    judged = labels >= 0
    scores[judged] = predict(head, features[judged])
    metrics = evaluate(scores, labels, image_index, scene_of, is_val, positive, threshold)
    metrics.update(
        seed=SEED,
        images=len(images),
        smoke_images=int(positive.sum()),
        scenes=len(set(scene_of)),
        validation_scenes=len(validation_scenes),
        training_cells=int(train.sum()),
        threshold=round(float(threshold), 4),
        training_seconds=round(time.time() - started, 1),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / "smoke_cells.onnx"
    export(args.trunk, head, model_path)
    check_export(model_path, head, args, images, boxes)
    metrics["sha256"] = hashlib.sha256(model_path.read_bytes()).hexdigest()
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_manifest(args.out, metrics)
    print(json.dumps(metrics, indent=2))


def dataset(data):
    """Image file names (sorted) and the smoke box of each annotated one (normalized), by name."""
    images = sorted(p.name for p in (data / "images").glob("*.jpeg"))
    boxes = {}
    for xml in sorted((data / "annotations" / "xmls").glob("*.xml")):
        root = ET.parse(xml).getroot()
        size = root.find("size")
        width, height = int(size.findtext("width")), int(size.findtext("height"))
        for b in root.iter("bndbox"):
            box = [float(b.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
            boxes[root.findtext("filename")] = (box[0] / width, box[1] / height, box[2] / width, box[3] / height)
    return images, boxes


def frame_tensor(path):
    """The image as the agent analyses it: scaled to FRAME_WIDTH, pasted top-left on a canvas
    padded to SIZE_MULTIPLE, BGR 0..255, NCHW. Also the frame's height."""
    image = cv2.imread(str(path))
    if image is None:
        raise ValueError(f"cannot read image {path}")
    height = int(round(image.shape[0] * FRAME_WIDTH / image.shape[1]))
    frame = cv2.resize(image, (FRAME_WIDTH, height), interpolation=cv2.INTER_AREA)
    padded = -(-height // SIZE_MULTIPLE) * SIZE_MULTIPLE
    canvas = np.full((padded, FRAME_WIDTH, 3), PAD_VALUE, np.uint8)
    canvas[:height] = frame
    return canvas.astype(np.float32).transpose(2, 0, 1)[None], height


def cell_labels(box, rows, cols, height):
    """1 smoke, 0 clean, -1 left out, for a rows x cols grid over a frame `height` high."""
    labels = np.zeros((rows, cols), np.int8)
    if box is None:
        return labels
    cy, cx = (np.mgrid[0:rows, 0:cols] + 0.5) * STRIDE
    x1, y1, x2, y2 = box[0] * FRAME_WIDTH, box[1] * height, box[2] * FRAME_WIDTH, box[3] * height
    labels[(cx > x1 - MARGIN_PX) & (cx < x2 + MARGIN_PX) & (cy > y1 - MARGIN_PX) & (cy < y2 + MARGIN_PX)] = -1
    inside = (cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)
    if not inside.any():
        inside = np.zeros_like(inside)
        inside[np.unravel_index(np.argmin((cx - (x1 + x2) / 2) ** 2 + (cy - (y1 + y2) / 2) ** 2), inside.shape)] = True
    labels[inside] = 1
    return labels


def cell_graph(trunk_path):
    """The trunk with its detection head cut off, giving `cells` [N, 384, H/16, W/16]."""
    model = onnx.load(str(trunk_path))
    graph = model.graph
    needed, keep = {TRUNK_STRIDE_16, TRUNK_STRIDE_32}, []
    for node in reversed(graph.node):
        if set(node.output) & needed:
            keep.append(node)
            needed |= set(node.input)
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)
    graph.initializer.extend([numpy_helper.from_array(np.array([], np.float32), "cells_roi"), numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "cells_scales")])
    needed |= {"cells_roi", "cells_scales"}
    graph.node.append(helper.make_node("Resize", [TRUNK_STRIDE_32, "cells_roi", "cells_scales"], ["stride_32_up"], mode="nearest"))
    graph.node.append(helper.make_node("Concat", [TRUNK_STRIDE_16, "stride_32_up"], ["cells"], axis=1))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("cells", TensorProto.FLOAT, ["N", 384, "rows", "cols"]))
    kept = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return model


def session(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def cell_features(args, images, boxes):
    """Features and label of every cell of every frame (padding rows left out), and the image
    each belongs to. Cached by the trunk's and the data's identity."""
    trunk = cell_graph(args.trunk)
    key = hashlib.sha256(trunk.SerializeToString() + "".join(images).encode() + json.dumps(sorted(boxes.items())).encode()).hexdigest()[:16]
    cache = args.cache / f"cells-{key}.npz" if args.cache else None
    if cache and cache.exists():
        saved = np.load(cache)
        return saved["features"].astype(np.float32), saved["labels"], saved["image_index"]
    run = session(trunk)
    features, labels, image_index = [], [], []
    for i, name in enumerate(images):
        x, height = frame_tensor(args.data / "images" / name)
        cells = run.run(None, {TRUNK_INPUT: x})[0][0]
        rows = -(-height // STRIDE)
        cells = cells[:, :rows]
        features.append(cells.reshape(cells.shape[0], -1).T.astype(np.float16))
        labels.append(cell_labels(boxes.get(name), rows, cells.shape[2], height).ravel())
        image_index.append(np.full(labels[-1].size, i, np.int32))
        if i % 500 == 0:
            print(f"  features: {i}/{len(images)} images", flush=True)
    out = np.concatenate(features), np.concatenate(labels), np.concatenate(image_index)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, features=out[0], labels=out[1], image_index=out[2])
    return out[0].astype(np.float32), out[1], out[2]


def fit_head(x, y, rng):
    """A perceptron with one hidden layer of HIDDEN units, trained with Adam on class-balanced
    cross-entropy with weight decay."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / std
    w1 = rng.normal(0, np.sqrt(2.0 / z.shape[1]), (z.shape[1], HIDDEN)).astype(np.float32)
    b1 = np.zeros(HIDDEN, np.float32)
    w2 = rng.normal(0, np.sqrt(1.0 / HIDDEN), (HIDDEN, 1)).astype(np.float32)
    b2 = np.zeros(1, np.float32)
    params = [w1, b1, w2, b2]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean())).astype(np.float32)
    lr, step = 1e-3, 0
    for _ in range(EPOCHS):
        order = rng.permutation(len(y))
        for start in range(0, len(y), 256):
            idx = order[start : start + 256]
            h = np.maximum(z[idx] @ w1 + b1, 0)
            p = 1 / (1 + np.exp(-(h @ w2 + b2)[:, 0]))
            g = ((p - y[idx]) * weight[idx] / len(idx))[:, None]
            gw2, gb2 = h.T @ g, g.sum(axis=0)
            gh = (g @ w2.T) * (h > 0)
            gw1, gb1 = z[idx].T @ gh, gh.sum(axis=0)
            step += 1
            for param, grad, (m, v) in zip(params, (gw1 + WEIGHT_DECAY * w1, gb1, gw2 + WEIGHT_DECAY * w2, gb2), moments):
                m[:] = 0.9 * m + 0.1 * grad
                v[:] = 0.999 * v + 0.001 * grad * grad
                param -= lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return {"mean": mean, "std": std, "w1": w1, "b1": b1, "w2": w2, "b2": b2}


def predict(head, x):
    h = np.maximum(((x - head["mean"]) / head["std"]) @ head["w1"] + head["b1"], 0)
    return 1 / (1 + np.exp(-(h @ head["w2"] + head["b2"])[:, 0]))


def logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def image_maxima(scores, labels, image_index, scene_of, clean_images, which):
    """Per image of `which` (a mask over images): the highest score among its cells that stand
    BASELINE_MARGIN above their scene's baseline, over its judged cells and over its smoke cells.
    The baseline leaves the image itself out: a camera learns from the frames before, not from
    the one it judges."""
    offsets = np.concatenate([[0], np.cumsum(np.bincount(image_index, minlength=len(scene_of)))])
    best = np.full(len(scene_of), -np.inf)
    best_smoke = np.full(len(scene_of), -np.inf)
    for s in np.unique(scene_of[which]):
        members = np.nonzero(scene_of == s)[0]
        references = members[clean_images[members]]
        learnt = logit(np.stack([scores[offsets[i] : offsets[i + 1]] for i in references]))
        for i in members[which[members]]:
            others = learnt[references != i]
            cells = slice(offsets[i], offsets[i + 1])
            new = logit(scores[cells]) - np.quantile(others, BASELINE_QUANTILE, axis=0) >= BASELINE_MARGIN
            best[i] = scores[cells][new & (labels[cells] >= 0)].max(initial=-np.inf)
            best_smoke[i] = scores[cells][new & (labels[cells] == 1)].max(initial=-np.inf)
    return best[which], best_smoke[which]


def choose_threshold(features, labels, image_index, scene_of, is_val, sampled, rng, folds=3):
    """The operating point, from out-of-fold scores on the training scenes (the validation
    scenes are never looked at)."""
    train_scenes = sorted(set(scene_of[~is_val]))
    rng.shuffle(train_scenes)
    fold_of_scene = np.full(scene_of.max() + 1, -1)
    for k, s in enumerate(train_scenes):
        fold_of_scene[s] = k % folds
    cell_fold = fold_of_scene[scene_of[image_index]]
    scores = np.full(len(labels), -np.inf)
    for k in range(folds):
        head = fit_head(features[sampled & (cell_fold >= 0) & (cell_fold != k)], labels[sampled & (cell_fold >= 0) & (cell_fold != k)], rng)
        held = (cell_fold == k) & (labels >= 0)
        scores[held] = predict(head, features[held])
    clean_images = np.zeros(len(scene_of), bool)
    clean_images[np.unique(image_index[cell_fold >= 0])] = True
    clean_images &= ~np.isin(np.arange(len(scene_of)), image_index[labels != 0])
    best, _ = image_maxima(scores, labels, image_index, scene_of, clean_images, clean_images)
    return float(np.quantile(best, 1 - IMAGE_FALSE_POSITIVE_TARGET))


def evaluate(scores, labels, image_index, scene_of, is_val, positive, threshold):
    """Validation metrics: per cell, and per image (a smoke image is found when one of its smoke
    cells reaches the threshold above its scene's baseline; a smoke-free image is flagged when
    any cell does)."""
    on = is_val[image_index] & (labels >= 0)
    s, y = scores[on], labels[on]
    hit = s >= threshold
    tp, fp, fn = int(np.sum(hit & (y == 1))), int(np.sum(hit & (y == 0))), int(np.sum(~hit & (y == 1)))
    ranks = np.empty(len(s))
    ranks[np.argsort(s)] = np.arange(len(s))
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    auc = (ranks[y == 1].sum() - n_pos * (n_pos - 1) / 2) / (n_pos * n_neg)
    _, smoke_best = image_maxima(scores, labels, image_index, scene_of, ~positive, is_val & positive)
    clean_best, _ = image_maxima(scores, labels, image_index, scene_of, ~positive, is_val & ~positive)
    found, flagged = int(np.sum(smoke_best >= threshold)), int(np.sum(clean_best >= threshold))
    curve = [
        {
            "threshold": t,
            "cell_recall": round(float(np.mean(s[y == 1] >= t)), 3),
            "cell_false_positive_rate": round(float(np.mean(s[y == 0] >= t)), 4),
            "image_recall": round(float(np.mean(smoke_best >= t)), 3),
            "image_false_positive_rate": round(float(np.mean(clean_best >= t)), 3),
        }
        for t in CURVE
    ]
    return {
        "validation_curve": curve,
        "validation": {
            "cells": int(len(y)),
            "smoke_cells": n_pos,
            "cell_roc_auc": round(float(auc), 3),
            "cell_precision": round(tp / max(tp + fp, 1), 3),
            "cell_recall": round(tp / max(tp + fn, 1), 3),
            "cell_false_positive_rate": round(fp / max(n_neg, 1), 4),
            "smoke_images": int(np.sum(is_val & positive)),
            "smoke_images_found": found,
            "image_recall": round(found / max(int(np.sum(is_val & positive)), 1), 3),
            "smoke_free_images": int(np.sum(is_val & ~positive)),
            "smoke_free_images_flagged": flagged,
            "image_false_positive_rate": round(flagged / max(int(np.sum(is_val & ~positive)), 1), 3),
        }
    }


def export(trunk_path, head, path):
    """Trunk + head as one ONNX graph: `images` [N,3,H,W] in, `p_smoke` [N,1,H/16,W/16] out."""
    model = cell_graph(trunk_path)
    graph = model.graph
    # Standardisation folded into the first layer: ((x - m) / s) W + b = x (W / s) - (m / s) W + b.
    w1 = (head["w1"] / head["std"][:, None]).astype(np.float32)
    b1 = (head["b1"] - (head["mean"] / head["std"]) @ head["w1"]).astype(np.float32)
    as_conv = lambda w: w.T[:, :, None, None].astype(np.float32)  # noqa: E731 (1x1 convolution weights)
    for name, value in (("smoke_w1", as_conv(w1)), ("smoke_b1", b1), ("smoke_w2", as_conv(head["w2"])), ("smoke_b2", head["b2"].astype(np.float32))):
        graph.initializer.append(numpy_helper.from_array(value, name))
    graph.node.extend([
        helper.make_node("Conv", ["cells", "smoke_w1", "smoke_b1"], ["smoke_hidden_in"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["smoke_hidden_in"], ["smoke_hidden"]),
        helper.make_node("Conv", ["smoke_hidden", "smoke_w2", "smoke_b2"], ["smoke_logit"], kernel_shape=[1, 1]),
        helper.make_node("Sigmoid", ["smoke_logit"], ["p_smoke"]),
    ])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("p_smoke", TensorProto.FLOAT, ["N", 1, "rows", "cols"]))
    model.producer_name = "canh training/smoke"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def check_export(path, head, args, images, boxes):
    """The exported graph gives what the trained head gives, on a real frame."""
    name = next(n for n in images if n in boxes)
    x, _ = frame_tensor(args.data / "images" / name)
    exported = session(onnx.load(str(path))).run(None, {TRUNK_INPUT: x})[0][0, 0].ravel()
    cells = session(cell_graph(args.trunk)).run(None, {TRUNK_INPUT: x})[0][0]
    expected = predict(head, cells.reshape(cells.shape[0], -1).T)
    if not np.allclose(exported, expected, atol=1e-4):
        raise SystemExit(f"the exported model disagrees with the trained head (largest difference {np.abs(exported - expected).max()})")


def write_manifest(out, metrics, trunk="YOLOX-nano's frozen trunk", chosen_on="the training scenes (out of fold)"):
    v = metrics["validation"]
    (out / "manifest.toml").write_text(f'''# Canh's smoke model: P(smoke) for every 16x16-pixel cell of the analysed frame (a heat map).
# Made by training/smoke/train.sh (README there) from the AI For Mankind / HPWREN smoke set on
# {trunk}. CAVEAT: the training images' licence was never clarified by their
# authors; see PROVENANCE.txt. On camera scenes unseen in training: cell ROC-AUC {v["cell_roc_auc"]};
# {v["smoke_images_found"]} of {v["smoke_images"]} smoke images found, {v["smoke_free_images_flagged"]} of {v["smoke_free_images"]} smoke-free images flagged.
name = "smoke_cells"
file = "smoke_cells.onnx"
sha256 = "{metrics["sha256"]}"
licence = "Apache-2.0 (YOLOX-nano trunk); head trained on images whose licence is unclear, see PROVENANCE.txt"
provenance = "PROVENANCE.txt"
labels = "classes.txt"

# Chosen on {chosen_on}: {IMAGE_FALSE_POSITIVE_TARGET:.0%} of smoke-free images have a cell at or above it
# that also stands {BASELINE_MARGIN:g} logits above its scene's baseline (as the agent judges cells).
score_threshold = {metrics["threshold"]}

[input]
name = "images"
width = 416
height = 416
layout = "nchw"
color = "bgr"
# As YOLOX-nano: raw 0..255 values, the frame pasted top-left on a canvas of 114.
scale = 1.0
mean = [0.0, 0.0, 0.0]
std = [1.0, 1.0, 1.0]
letterbox = "top_left"
pad_value = 114.0
size_multiple = {SIZE_MULTIPLE}

[output]
name = "p_smoke"
decoder = "heatmap"
strides = [{STRIDE}]
''')


if __name__ == "__main__":
    main()
