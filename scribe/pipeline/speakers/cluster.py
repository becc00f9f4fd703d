"""Group a session's voice windows into speakers, and name the groups.

How many speakers: two estimates, each wrong in its own way. Average-linkage
agglomerative clustering on cosine distance, cut at the distance that separates voices in
the encoder's space (tuned on a held-out part of the benchmark's conversations, ``python
benchmarks/speakers.py --tune``), counts the groups holding at least ``MIN_SHARE`` of the
windows: it merges similar voices (two of one sex). The normalised maximum eigengap
(:mod:`scribe.pipeline.speakers.spectral`) tells similar voices apart but splits a
speaker whose windows form sub-groups. The count is always the smaller of the two, so
it never exceeds the tree's: the eigengap can only merge what the cut split (the tree's
alone for a session of fewer than ``spectral.MIN_WINDOWS`` windows, and where the cut is
already at ``min_speakers``); kept within ``min_speakers`` and ``max_speakers``;
``num_speakers`` replaces it (``estimator="distance"`` is the tree's
count alone, as before). The tree is then cut just deep enough to hold that many large
groups; they seed the speakers, every window joins its nearest seed, and two rounds of
centroid reassignment follow. Windows that straddle two voices or hold a cough sit alone
high in the tree: cutting it into N groups directly would spend speakers on them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from scribe.pipeline.speakers import spectral

Array = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]
# cosine distance beyond which two groups are two voices, per encoder; the registered
# encoders differ in dimension, so the vectors say which one made them
DISTANCES = {256: 0.35, 192: 0.45}  # GE2E (resemblyzer), CAM++ (campplus)
DISTANCE = 0.35  # an encoder of another dimension
MIN_SHARE = 0.05  # a group with less of the windows than this is no speaker of its own
_MAX_LINKAGE = 2000  # windows clustered directly; the rest join their nearest centroid
_MAX_CUT = 64  # the deepest cut searched for enough large groups
_ROUNDS = 2  # centroid reassignment rounds
ESTIMATORS = ("eigengap", "distance")  # the default count, and the tree's alone


def cluster(
    vectors: Array, *, num_speakers: int | None = None, max_speakers: int = 8,
    min_speakers: int = 1, distance: float | None = None, estimator: str = "eigengap"
) -> Labels:
    """A speaker index per row of ``vectors`` (L2-normalised); 0 is who spoke first.
    ``distance`` overrides the encoder's calibrated one (the benchmark tunes it so);
    ``estimator`` is one of :data:`ESTIMATORS` (see the module)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, not {estimator!r}")
    if len(vectors) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(vectors) == 1 or num_speakers == 1 or max_speakers == 1:
        return np.zeros(len(vectors), dtype=np.int64)
    if distance is None:
        distance = DISTANCES.get(vectors.shape[1], DISTANCE)
    sample = vectors[::-(-len(vectors) // _MAX_LINKAGE)]
    tree = _tree(sample)
    wanted = num_speakers or _estimate(sample, tree, distance, (min_speakers, max_speakers),
                                       estimator)
    seeds = _seeds(sample, tree, min(wanted, len(sample)))
    labels = _nearest(vectors, seeds)
    for _ in range(_ROUNDS):
        labels = np.unique(labels, return_inverse=True)[1].astype(np.int64)
        labels = _nearest(vectors, centroids(vectors, labels))
    return _by_first_appearance(labels)


def _tree(vectors: Array) -> npt.NDArray[np.float64]:
    from scipy.cluster.hierarchy import linkage

    tree: npt.NDArray[np.float64] = linkage(vectors.astype(np.float64), method="average",
                                            metric="cosine")
    return tree


def _estimate(vectors: Array, tree: npt.NDArray[np.float64], distance: float,
              bounds: tuple[int, int], estimator: str) -> int:
    """The number of speakers within ``bounds`` (see the module)."""
    low, high = bounds
    by_tree = min(max(_count(tree, distance, len(vectors)), low), high)
    if estimator == "distance" or by_tree == low or len(vectors) < spectral.MIN_WINDOWS:
        return by_tree
    by_gap = spectral.estimate(vectors, min_speakers=low, max_speakers=high)
    return min(by_tree, by_gap)


def _count(tree: npt.NDArray[np.float64], distance: float, n: int) -> int:
    """Groups of at least ``MIN_SHARE`` of the windows when the tree is cut at ``distance``."""
    from scipy.cluster.hierarchy import fcluster

    counts = np.bincount(fcluster(tree, t=distance, criterion="distance"))
    return max(int((counts >= MIN_SHARE * n).sum()), 1)


def _seeds(vectors: Array, tree: npt.NDArray[np.float64], wanted: int) -> Array:
    """The centroids of the ``wanted`` largest groups of the shallowest cut that has that
    many large ones; of the cut into ``wanted`` groups when none has (a real sliver)."""
    from scipy.cluster.hierarchy import fcluster

    def cut(k: int) -> Labels:
        return np.asarray(fcluster(tree, t=k, criterion="maxclust"), dtype=np.int64) - 1

    found = cut(wanted)
    for k in range(wanted, min(len(vectors), _MAX_CUT) + 1):
        deeper = cut(k)
        if int((np.bincount(deeper) >= MIN_SHARE * len(vectors)).sum()) >= wanted:
            found = deeper
            break
    found = np.unique(found, return_inverse=True)[1].astype(np.int64)
    largest = np.argsort(-np.bincount(found), kind="stable")[:wanted]
    return centroids(vectors, found)[largest]


def centroids(vectors: Array, labels: Labels) -> Array:
    """Each speaker's mean direction, in label order (one row per label present)."""
    sums = np.stack([vectors[labels == k].sum(axis=0) for k in np.unique(labels)])
    means: Array = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-8)
    return means


def _nearest(vectors: Array, means: Array) -> Labels:
    return np.asarray(np.argmax(vectors @ means.T, axis=1), dtype=np.int64)


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
