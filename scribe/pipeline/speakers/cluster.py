"""Group a session's voice windows into speakers, and name the groups.

Average-linkage agglomerative clustering on cosine distance: with the number of speakers
given it cuts the tree into that many groups; otherwise it cuts at the distance that
separates voices in the encoder's space (tuned on a held-out part of the benchmark's
conversations, ``python benchmarks/speakers.py --tune``), kept within ``min_speakers`` and
``max_speakers`` groups. One pass of centroid
reassignment then moves windows the greedy merging misplaced. Groups holding a sliver of
the speech are folded into the nearest large one: a cough or a laugh is not a speaker.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]
# cosine distance beyond which two groups are two voices, per encoder; the registered
# encoders differ in dimension, so the vectors say which one made them
DISTANCES = {256: 0.35, 192: 0.6}  # GE2E (resemblyzer), CAM++ (campplus)
DISTANCE = 0.35  # an encoder of another dimension
MIN_SHARE = 0.05  # a group with less of the speech than this is folded into another
_MAX_LINKAGE = 2000  # windows clustered directly; the rest join their nearest centroid


def cluster(
    vectors: Array, *, num_speakers: int | None = None, max_speakers: int = 8,
    min_speakers: int = 1, distance: float | None = None
) -> Labels:
    """A speaker index per row of ``vectors`` (L2-normalised); 0 is who spoke first.
    ``distance`` overrides the encoder's calibrated one (the benchmark tunes it so)."""
    if len(vectors) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(vectors) == 1 or num_speakers == 1 or max_speakers == 1:
        return np.zeros(len(vectors), dtype=np.int64)
    if distance is None:
        distance = DISTANCES.get(vectors.shape[1], DISTANCE)
    stride = -(-len(vectors) // _MAX_LINKAGE)
    bounds = (min(min_speakers, len(vectors[::stride])), max_speakers)
    labels = _linkage(vectors[::stride], num_speakers, bounds, distance)
    labels = _nearest(vectors, centroids(vectors[::stride], labels))
    # dense 0..k-1 again (a group can lose every window), so label == centroid row
    labels = np.unique(labels, return_inverse=True)[1].astype(np.int64)
    if num_speakers is None and labels.max() + 1 > min_speakers:
        labels = _fold_small(vectors, labels, min_speakers)
    return _by_first_appearance(labels)


def _linkage(vectors: Array, num_speakers: int | None, bounds: tuple[int, int],
             distance: float) -> Labels:
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(vectors) < 2:
        return np.zeros(len(vectors), dtype=np.int64)
    tree = linkage(vectors.astype(np.float64), method="average", metric="cosine")
    if num_speakers is not None:
        found = fcluster(tree, t=num_speakers, criterion="maxclust")
    else:
        found = fcluster(tree, t=distance, criterion="distance")
        if not bounds[0] <= found.max() <= bounds[1]:
            wanted = min(max(int(found.max()), bounds[0]), bounds[1])
            found = fcluster(tree, t=wanted, criterion="maxclust")
    return np.asarray(found, dtype=np.int64) - 1


def centroids(vectors: Array, labels: Labels) -> Array:
    """Each speaker's mean direction, in label order (one row per label present)."""
    sums = np.stack([vectors[labels == k].sum(axis=0) for k in np.unique(labels)])
    means: Array = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-8)
    return means


def _nearest(vectors: Array, means: Array) -> Labels:
    return np.asarray(np.argmax(vectors @ means.T, axis=1), dtype=np.int64)


def _fold_small(vectors: Array, labels: Labels, min_speakers: int = 1) -> Labels:
    counts = np.bincount(labels)
    large = np.flatnonzero(counts >= MIN_SHARE * len(labels))
    if len(large) == len(counts) or len(large) < max(min_speakers, 1):
        return labels
    return np.asarray(large[_nearest(vectors, centroids(vectors, labels)[large])],
                      dtype=np.int64)


def _by_first_appearance(labels: Labels) -> Labels:
    order = {int(k): i for i, k in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([order[int(k)] for k in labels], dtype=np.int64)


def name_speakers(means: Array, references: dict[str, Array]) -> list[str | None]:
    """The known name for each speaker: the best cosine match, each name used once, greedy
    from the most similar pair (as OpenAI's known speakers do, matched to the clusters)."""
    names: list[str | None] = [None] * len(means)
    if not references or len(means) == 0:
        return names
    keys = list(references)
    scores = means @ np.stack([references[k] for k in keys]).T
    for _ in range(min(len(keys), len(means))):
        row, col = np.unravel_index(int(np.argmax(scores)), scores.shape)
        names[row] = keys[col]
        scores[row, :] = -np.inf
        scores[:, col] = -np.inf
    return names
