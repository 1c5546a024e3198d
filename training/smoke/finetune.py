"""Fine-tunes the whole smoke network (trunk and head) and writes it to a folder that does not
ship, with its manifest and metrics. Run through `training/smoke/train.sh --finetune`.

The same heat map as `train.py` (read its docstring), on the same validation scenes, judged the
same way; what differs is that the trunk learns too. It is turned from its ONNX graph into a
PyTorch module (onnx2torch) and trained with the head after HEAD_EPOCHS of the head alone, so
that a new head's first gradients do not wreck what it learnt on COCO. Lookout plumes sit where
their fires are, so frames are zoomed into at random: without it the trunk learns places, not
smoke. Calibration scenes, training scenes kept out of the fine-tuning, choose the epoch kept
and the threshold. The README compares the result with the frozen trunk that ships.
"""
import argparse
import copy
import hashlib
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import torch
from onnx import numpy_helper
from onnx2torch import convert

import scenes
import train

THREADS = 2
# Every frame is trained and scored on one canvas this high: a 640x480 still fills it (312 rows
# and padding), a 16:9 frame leaves more padding, whose cells are never judged.
CANVAS_HEIGHT = 320
CELL_ROWS, CELL_COLS = CANVAS_HEIGHT // train.STRIDE, train.FRAME_WIDTH // train.STRIDE
EPOCHS = 7
HEAD_EPOCHS = 3
BATCH = 8
HEAD_LEARNING_RATE = 1e-3
# Measured: at 3e-5 the first epoch of the whole network took the calibration scenes' recall from
# 0.15 to 0.007 (README); the trunk's weights (batch norm folded in) are small.
TRUNK_LEARNING_RATE = 3e-6
WEIGHT_DECAY = 1e-4
# Photometric jitter (gain, offset in 0..255 units): lookout light changes over the day.
GAIN = (0.75, 1.25)
OFFSET = 20
# Zoom into a random part of the frame, up to this factor.
ZOOM = 1.5
# Hard negatives from D-Fire's lookout cameras (sunsets, glare, haze, night lights), used when
# they carry no label. AoF00034..AoF00065 are the glare-and-haze test clip
# (clips/negative/dfire_lookout_glare_haze_4fps.mp4) and are never trained on.
NEGATIVES_HELD_FOR_TEST = range(34, 66)
# A cell is smoke when it reaches the threshold above its baseline; when fewer smoke-free
# calibration images than train.IMAGE_FALSE_POSITIVE_TARGET have any such cell at all, the
# target does not bind and a cell needs only to be more likely smoke than not.
THRESHOLD_FLOOR = 0.5


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="the aiformankind_hpwren_smoke folder")
    parser.add_argument("--negatives", required=True, type=Path, help="the dfire_aof_subset folder")
    parser.add_argument("--trunk", required=True, type=Path, help="models/yolox_nano/yolox_nano.onnx")
    parser.add_argument("--out", required=True, type=Path, help="folder for the model, manifest and metrics")
    args = parser.parse_args()
    started = time.time()
    rng = np.random.default_rng(train.SEED)
    torch.manual_seed(train.SEED)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)

    images, boxes = train.dataset(args.data)
    positive = np.array([name in boxes for name in images])
    scene_of = np.array(scenes.scenes([args.data / "images" / n for n in images]))
    # The same first draw as train.py: the same validation scenes.
    is_val = np.isin(scene_of, sorted(scenes.split(list(scene_of), list(positive), rng)))
    calibration_scenes = scenes.split(list(scene_of[~is_val]), list(positive[~is_val]), rng)
    is_cal = np.isin(scene_of, sorted(calibration_scenes)) & ~is_val
    print(f"validation: {is_val.sum()} images ({np.sum(is_val & positive)} with smoke); calibration: {len(calibration_scenes)} scenes, {is_cal.sum()} images ({np.sum(is_cal & positive)} with smoke)")

    negatives = hard_negatives(args.negatives)
    frames, heights, labels = load([args.data / "images" / n for n in images] + negatives, [boxes.get(n) for n in images] + [None] * len(negatives))
    learn = np.concatenate([~is_val & ~is_cal, np.ones(len(negatives), bool)])
    smoke = np.concatenate([positive, np.zeros(len(negatives), bool)])
    hpwren = slice(0, len(images))
    print(f"training: {np.sum(learn[hpwren])} images ({np.sum(learn & smoke)} with smoke) and {len(negatives)} D-Fire lookout images")

    def judge(model, which):
        """Scores of `which` as train.py lays them out (flat, image by image) and the operating
        threshold from the calibration scenes."""
        scores = score(model, frames[hpwren], is_cal | which)
        flat = scores.reshape(len(images), -1).ravel(), labels[hpwren].reshape(len(images), -1).ravel()
        image_index = np.repeat(np.arange(len(images)), CELL_ROWS * CELL_COLS)
        clean = is_cal & ~positive
        best, _ = train.image_maxima(*flat, image_index, scene_of, clean, clean)
        threshold = max(float(np.quantile(best, 1 - train.IMAGE_FALSE_POSITIVE_TARGET, method="higher")), THRESHOLD_FLOOR)
        return flat, image_index, threshold

    def calibration_recall(model):
        (scores, cell_labels), image_index, threshold = judge(model, is_cal)
        _, found = train.image_maxima(scores, cell_labels, image_index, scene_of, ~positive, is_cal & positive)
        return float(np.mean(found >= threshold))

    model = SmokeCells(convert(train.cell_graph(args.trunk)), frames[np.nonzero(learn & smoke)[0][:32]])
    # The hard negatives are in the smoke-free pool too, so an epoch may take one twice (as in
    # the runs the README reports).
    calibration, kept = fine_tune(model, frames, heights, labels, np.nonzero(learn & smoke)[0], np.nonzero(learn & ~smoke)[0], np.arange(len(images), len(frames)), calibration_recall, rng)
    (scores, cell_labels), image_index, threshold = judge(model, is_val)
    metrics = train.evaluate(scores, cell_labels, image_index, scene_of, is_val, positive, threshold)
    metrics.update(
        seed=train.SEED,
        calibration_scenes=len(calibration_scenes),
        training_images=int(np.sum(learn[hpwren])),
        hard_negatives=len(negatives),
        epochs=EPOCHS,
        calibration_recall_per_epoch=[round(r, 3) for r in calibration],
        epoch_kept=kept,
        threshold=round(threshold, 4),
        training_seconds=round(time.time() - started, 1),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / "smoke_cells.onnx"
    export(args.trunk, model, model_path)
    check_export(model_path, model, args.data / "images" / next(n for n in images if n in boxes))
    metrics["sha256"] = hashlib.sha256(model_path.read_bytes()).hexdigest()
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    train.write_manifest(args.out, metrics, "the whole of YOLOX-nano fine-tuned (finetune.py)", "calibration scenes kept out of the fine-tuning")
    print(json.dumps(metrics, indent=2))


def hard_negatives(folder):
    """D-Fire lookout images without a label, less those of the glare test clip."""
    paths = []
    for image in sorted((folder / "images").glob("AoF*.jpg")):
        label = folder / "labels" / f"{image.stem}.txt"
        held = int(image.stem[3:]) in NEGATIVES_HELD_FOR_TEST
        if not held and label.exists() and not label.read_text().strip() and cv2.imread(str(image)) is not None:
            paths.append(image)
    return paths


def load(paths, boxes):
    """Frames on the training canvas (uint8, BGR, padded as the agent pads), their heights, and
    their cell labels with the padding rows left out (-1)."""
    frames = np.full((len(paths), CANVAS_HEIGHT, train.FRAME_WIDTH, 3), train.PAD_VALUE, np.uint8)
    heights = np.zeros(len(paths), np.int32)
    labels = np.full((len(paths), CELL_ROWS, CELL_COLS), -1, np.int8)
    for i, (path, box) in enumerate(zip(paths, boxes)):
        x, heights[i] = train.frame_tensor(path)
        frames[i, : x.shape[2]] = x[0].transpose(1, 2, 0)
        rows = -(-heights[i] // train.STRIDE)
        labels[i, :rows] = train.cell_labels(box, rows, CELL_COLS, heights[i])
    return frames, heights, labels


class SmokeCells(torch.nn.Module):
    """Trunk, then the head on the trunk's cells standardised per feature (statistics taken once,
    on `sample`, before training), giving a logit per cell."""

    def __init__(self, trunk, sample):
        super().__init__()
        self.trunk = trunk
        with torch.no_grad():
            cells = self.trunk(as_tensor(sample))
        self.register_buffer("mean", cells.mean(dim=(0, 2, 3), keepdim=True))
        self.register_buffer("std", cells.std(dim=(0, 2, 3), keepdim=True) + 1e-6)
        self.hidden = torch.nn.Conv2d(cells.shape[1], train.HIDDEN, 1)
        self.out = torch.nn.Conv2d(train.HIDDEN, 1, 1)

    def forward(self, x):
        return self.out(torch.relu(self.hidden((self.trunk(x) - self.mean) / self.std)))[:, 0]


def as_tensor(frames):
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2), np.float32))


def augment(frames, heights, labels, rng):
    """Zoom into a random part of each frame (labels follow, read at the cells' centres), mirror
    half of them and jitter gain and offset; padding stays as the agent pads. A lookout camera's
    plume sits where its fire is, so without moving the view the trunk learns places, not smoke."""
    frames, labels = frames.astype(np.float32), labels.copy()
    for i, h in enumerate(heights):
        zoom = rng.uniform(1, ZOOM)
        shift = np.array([[zoom, 0, rng.uniform((1 - zoom) * train.FRAME_WIDTH, 0)], [0, zoom, rng.uniform((1 - zoom) * h, 0)]])
        frames[i, :h] = cv2.warpAffine(frames[i, :h], shift, (train.FRAME_WIDTH, int(h)), flags=cv2.INTER_LINEAR)
        rows = -(-h // train.STRIDE)
        pixels = np.repeat(np.repeat(labels[i, :rows] + 1, train.STRIDE, axis=0), train.STRIDE, axis=1).astype(np.uint8)
        warped = cv2.warpAffine(pixels, shift, (train.FRAME_WIDTH, rows * train.STRIDE), flags=cv2.INTER_NEAREST)
        labels[i, :rows] = warped[train.STRIDE // 2 :: train.STRIDE, train.STRIDE // 2 :: train.STRIDE].astype(np.int8) - 1
        if rng.random() < 0.5:
            frames[i], labels[i] = frames[i, :, ::-1], labels[i, :, ::-1]
        frames[i, :h] = np.clip(frames[i, :h] * rng.uniform(*GAIN) + rng.uniform(-OFFSET, OFFSET), 0, 255)
    return frames, labels


def fine_tune(model, frames, heights, labels, smoke, clean, negatives, judge, rng):
    """Each epoch: every smoke image, as many smoke-free ones drawn anew and the hard negatives,
    in a new order. Cross-entropy per judged cell, smoke and clean cells weighted to balance.
    After each epoch `judge` scores the model on scenes it does not learn from; the best epoch's
    weights are kept (the head alone on the COCO trunk, if nothing after it does better).
    Returns each epoch's judgement and the epoch kept."""
    head = list(model.hidden.parameters()) + list(model.out.parameters())
    optimizer = torch.optim.AdamW([{"params": head, "lr": HEAD_LEARNING_RATE}, {"params": model.trunk.parameters(), "lr": TRUNK_LEARNING_RATE}], weight_decay=WEIGHT_DECAY)
    judged_epochs, best = [], None
    for epoch in range(EPOCHS):
        began = time.time()
        for p in model.trunk.parameters():
            p.requires_grad_(epoch >= HEAD_EPOCHS)
        chosen = rng.permutation(np.concatenate([smoke, rng.choice(clean, len(smoke), replace=False), negatives]))
        judged = labels[chosen] >= 0
        share = float(np.sum(labels[chosen] == 1)) / judged.sum()
        losses = []
        for start in range(0, len(chosen), BATCH):
            idx = chosen[start : start + BATCH]
            x, y = augment(frames[idx], heights[idx], labels[idx], rng)
            y = torch.from_numpy(y.astype(np.float32))
            weight = torch.where(y == 1, 0.5 / share, 0.5 / (1 - share)) * (y >= 0)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(as_tensor(x)), y.clamp(min=0), weight=weight, reduction="sum") / (y >= 0).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        judged_epochs.append(judge(model))
        if best is None or judged_epochs[-1] > judged_epochs[best[0]]:
            best = (epoch, copy.deepcopy(model.state_dict()))
        print(f"  epoch {epoch + 1}/{EPOCHS} ({'head' if epoch < HEAD_EPOCHS else 'whole network'}): {len(chosen)} images, loss {np.mean(losses):.4f}, calibration {judged_epochs[-1]:.3f}, {time.time() - began:.0f} s", flush=True)
    model.load_state_dict(best[1])
    return judged_epochs, best[0] + 1


def score(model, frames, which):
    """P(smoke) per cell for the frames in `which` (zero elsewhere)."""
    scores = np.zeros((len(frames), CELL_ROWS, CELL_COLS), np.float32)
    chosen = np.nonzero(which)[0]
    with torch.no_grad():
        for start in range(0, len(chosen), 16):
            idx = chosen[start : start + 16]
            scores[idx] = torch.sigmoid(model(as_tensor(frames[idx]))).numpy()
    return scores


def check_export(path, model, image):
    """The exported graph gives what the trained network gives, on a real frame padded as the
    agent pads it."""
    x = torch.from_numpy(train.frame_tensor(image)[0])
    exported = train.session(onnx.load(str(path))).run(None, {train.TRUNK_INPUT: x.numpy()})[0][0, 0]
    with torch.no_grad():
        expected = torch.sigmoid(model(x))[0].numpy()
    if not np.allclose(exported, expected, atol=1e-4):
        raise SystemExit(f"the exported model disagrees with the trained one (largest difference {np.abs(exported - expected).max()})")


def export(trunk_path, model, path):
    """The fine-tuned trunk's weights written into YOLOX-nano's ONNX graph, then train.export's
    trunk + head graph from it, the head's standardisation folded in."""
    trunk = onnx.load(str(trunk_path))
    modules = dict(model.trunk.named_modules())
    initializers = {t.name: t for t in trunk.graph.initializer}
    written = 0
    for node in trunk.graph.node:
        conv = modules.get(node.name.lstrip("/").replace(".", "/"))  # onnx2torch's module names
        if node.op_type == "Conv" and conv is not None:
            for name, value in zip(node.input[1:], (conv.weight, conv.bias)):
                initializers[name].CopyFrom(numpy_helper.from_array(value.detach().numpy(), name))
                written += value.numel()
    if written != sum(p.numel() for p in model.trunk.parameters()):
        raise SystemExit("some trained trunk weights have no place in the ONNX graph")
    head = {
        "mean": model.mean.numpy().ravel(),
        "std": model.std.numpy().ravel(),
        "w1": model.hidden.weight.detach().numpy()[:, :, 0, 0].T,
        "b1": model.hidden.bias.detach().numpy(),
        "w2": model.out.weight.detach().numpy()[:, :, 0, 0].T,
        "b2": model.out.bias.detach().numpy(),
    }
    with tempfile.TemporaryDirectory() as folder:
        tuned = Path(folder) / "trunk.onnx"
        onnx.save(trunk, str(tuned))
        train.export(tuned, head, path)


if __name__ == "__main__":
    main()
