"""How many speakers: the normalised maximum eigengap of a pruned affinity graph.

NME-SC's count (Park et al. 2019, "Auto-Tuning Spectral Clustering for Speaker
Diarization Using Normalized Maximum Eigengap", as NeMo runs it): each window keeps its
``p`` most similar windows (cosine) as neighbours, the graph is made symmetric, and the
eigenvalues of its Laplacian (here the normalised one, ``I - D^-1/2 A D^-1/2``) are taken
in ascending order. The largest gap among the first ``max_speakers`` says how many
speakers there are. Over a range of ``p``, the one with the smallest ratio of ``p`` (as a
share of the windows) to its largest gap (as a share of the largest eigenvalue) wins, so
neither the neighbourhood nor a distance is set by hand; a ``p`` whose graph falls apart
is passed over. Only ranks of similarity count, so the estimate does not depend on the
encoder's scale; that is also why it splits one speaker whose windows form sub-groups
(a change of room or language) as readily as it tells two similar voices apart.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float64]
MAX_WINDOWS = 512  # windows the graph is built on (evenly spread over the session)
MIN_WINDOWS = 30  # fewer (24 s of speech) give each window too few neighbours to count on
MAX_P_SHARE = 0.35  # the largest neighbourhood tried, as a share of the windows
P_STEPS = 30  # neighbourhood sizes tried, from 2 to that
_EPS = 1e-10
_CONNECTED = 1e-8  # the second eigenvalue of a graph in one piece is above this


def estimate(vectors: Array, *, min_speakers: int = 1, max_speakers: int = 8) -> int:
    """The speaker count of ``vectors`` (L2-normalised rows) within the bounds."""
    vectors = vectors[::-(-len(vectors) // MAX_WINDOWS)]
    n = len(vectors)
    if n < 3:
        return min_speakers
    similarity = vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    sizes = neighbourhoods(n)
    best = (np.inf, min_speakers)
    for p in sizes:
        eigenvalues = np.asarray(np.linalg.eigvalsh(_laplacian(_pruned(similarity, p))),
                                 dtype=np.float64)
        if eigenvalues[1] < _CONNECTED and p != sizes[-1]:
            continue  # the graph is in pieces at this p
        count, gap = _largest_gap(eigenvalues, min_speakers, max_speakers)
        best = min(best, ((p / n) / (gap + _EPS), count))
    return int(best[1])


def neighbourhoods(n: int) -> list[int]:
    """The ``p`` values searched: up to :data:`P_STEPS` of them from 2 to
    :data:`MAX_P_SHARE` of ``n`` (at most ``n - 1``)."""
    top = min(max(int(n * MAX_P_SHARE), 2), n - 1)
    return sorted({int(p) for p in np.linspace(2, top, min(P_STEPS, top - 1))})


def _pruned(similarity: Matrix, p: int) -> Matrix:
    """Each row's ``p`` most similar windows as 1, the rest 0, made symmetric."""
    nearest = np.argpartition(-similarity, p - 1, axis=1)[:, :p]
    graph = np.zeros_like(similarity)
    np.put_along_axis(graph, nearest, 1.0, axis=1)
    symmetric: Matrix = 0.5 * (graph + graph.T)
    return symmetric


def _laplacian(graph: Matrix) -> Matrix:
    """The normalised Laplacian ``I - D^-1/2 A D^-1/2`` of ``graph`` without self-loops."""
    np.fill_diagonal(graph, 0.0)
    scale = 1.0 / np.sqrt(np.maximum(graph.sum(axis=1), _EPS))
    laplacian: Matrix = np.eye(len(graph)) - scale[:, None] * graph * scale[None, :]
    return laplacian


def _largest_gap(eigenvalues: Matrix, min_speakers: int, max_speakers: int
                 ) -> tuple[int, float]:
    """The count whose eigengap is largest within the bounds, and that gap as a share of
    the largest eigenvalue."""
    gaps = np.diff(eigenvalues)[:max_speakers]
    lowest = min(min_speakers, len(gaps)) - 1
    count = lowest + int(np.argmax(gaps[lowest:])) + 1
    return count, float(gaps[count - 1]) / (float(eigenvalues[-1]) + _EPS)
