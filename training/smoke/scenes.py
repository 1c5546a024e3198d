"""Which scene (camera view) each image shows, so that validation holds whole scenes the model
never saw in training.

The set's file names carry no camera, and the caption HPWREN burns into each image is too small
to read reliably. But a lookout camera never moves: two images of one view are near copies in
coarse structure (horizon, ridges, towers, the fish-eye rim) whatever the light. Images are
grouped by the correlation of small grey thumbnails (caption rows cut off), linking every pair
above `LINK_CORRELATION` and taking the connected groups. The threshold errs on the side of
merging: two similar views in one scene only make validation harder.
"""
import cv2
import numpy as np

LINK_CORRELATION = 0.93
THUMBNAIL = (64, 48)
CAPTION_ROWS = 4  # of the thumbnail's 48


def thumbnail(path):
    """A zero-mean, unit-length vector of the image's coarse grey structure."""
    grey = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_4)
    if grey is None:
        raise ValueError(f"cannot read image {path}")
    small = cv2.resize(grey, THUMBNAIL, interpolation=cv2.INTER_AREA).astype(np.float64)[CAPTION_ROWS:]
    v = small.ravel() - small.mean()
    return v / (np.linalg.norm(v) + 1e-9)


def scenes(paths):
    """A scene number per image (numbered by first appearance in `paths`)."""
    vectors = np.array([thumbnail(p) for p in paths])
    linked = np.triu(vectors @ vectors.T > LINK_CORRELATION, 1)
    parent = list(range(len(paths)))

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in zip(*np.nonzero(linked)):
        parent[root(i)] = root(j)
    numbers = {}
    return [numbers.setdefault(root(i), len(numbers)) for i in range(len(paths))]


def split(scene_of, positive, rng, share=0.2):
    """Scenes for validation: taken in a random order until they hold at least `share` of the
    smoke images and of the smoke-free ones. Returns the set of validation scene numbers."""
    scene_ids = sorted(set(scene_of))
    rng.shuffle(scene_ids)
    total_pos = sum(positive)
    total_neg = len(positive) - total_pos
    chosen, pos, neg = set(), 0, 0
    for s in scene_ids:
        if pos >= share * total_pos and neg >= share * total_neg:
            break
        members = [p for p, sc in zip(positive, scene_of) if sc == s]
        chosen.add(s)
        pos += sum(members)
        neg += len(members) - sum(members)
    return chosen
