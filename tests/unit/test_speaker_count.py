"""How many speakers a session's voice windows hold: the normalised maximum eigengap
(NME-SC) and the clustering that combines it with the tree's distance cut, on vectors
drawn around known directions (von Mises-Fisher-like: a unit centre plus Gaussian noise,
normalised)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from scribe.pipeline.speakers import cluster, spectral

pytestmark = pytest.mark.unit

Vectors = npt.NDArray[np.float32]
DIM = 256  # GE2E's dimension: the cluster's calibrated distance is 0.35


def _unit(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    unit: npt.NDArray[np.float64] = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return unit


def voices(centres: npt.NDArray[np.float64], sizes: list[int], spread: float,
           seed: int = 0) -> tuple[Vectors, npt.NDArray[np.int64]]:
    """``sizes[k]`` unit vectors around ``centres[k]`` (their cosine to it falls as
    ``spread`` grows), interleaved as turns would be, and each one's centre index."""
    rng = np.random.default_rng(seed)
    truth = np.concatenate([np.full(n, k) for k, n in enumerate(sizes)])
    truth = truth[rng.permutation(len(truth))]
    noisy = centres[truth] + spread * rng.normal(size=(len(truth), centres.shape[1]))
    return _unit(noisy).astype(np.float32), truth.astype(np.int64)


def separated(k: int, seed: int = 0) -> npt.NDArray[np.float64]:
    """``k`` random directions (near orthogonal in 256 dimensions)."""
    return _unit(np.random.default_rng(100 + seed).normal(size=(k, DIM)))


def same_grouping(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> bool:
    """Whether two labellings split the rows the same way, whatever the label names."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_well_separated_voices_are_counted_and_grouped(k: int) -> None:
    vectors, truth = voices(separated(k, k), [60, 45, 30, 80, 50][:k], spread=0.04, seed=k)
    assert spectral.estimate(vectors) == k
    assert same_grouping(cluster.cluster(vectors), truth)


def test_the_bounds_and_an_exact_count_win() -> None:
    vectors, _ = voices(separated(4), [50, 50, 50, 50], spread=0.04)
    assert spectral.estimate(vectors, max_speakers=2) <= 2
    assert spectral.estimate(vectors, min_speakers=6) >= 6
    assert len(set(cluster.cluster(vectors, max_speakers=3).tolist())) == 3
    assert len(set(cluster.cluster(vectors, min_speakers=5).tolist())) == 5
    assert len(set(cluster.cluster(vectors, num_speakers=2).tolist())) == 2
    assert set(cluster.cluster(vectors, num_speakers=1).tolist()) == {0}


def test_one_voice_is_one_speaker_at_any_length() -> None:
    for n, spread in ((40, 0.04), (300, 0.06), (2000, 0.06)):
        vectors, _ = voices(separated(1), [n], spread=spread, seed=n)
        assert spectral.estimate(vectors) == 1, n
        assert set(cluster.cluster(vectors).tolist()) == {0}, n


def test_two_similar_voices_the_cut_merges_stay_merged() -> None:
    """Centres 0.18 apart in cosine distance, under the tree's 0.35: the eigengap tells
    them apart, but the count never exceeds the cut's, so the default finds one voice
    (a second speaker is never invented where the cut saw one)."""
    a, other = separated(2)
    b = _unit(a + 0.7 * _unit(other - (other @ a) * a))  # cosine 0.82 to a
    vectors, _ = voices(np.stack([a, b]), [70, 50], spread=0.03)
    assert spectral.estimate(vectors) == 2
    assert set(cluster.cluster(vectors).tolist()) == {0}
    assert set(cluster.cluster(vectors, estimator="distance").tolist()) == {0}


def test_a_voice_the_cut_splits_is_merged_by_the_eigengap() -> None:
    """One speaker's windows with a side group of 12 (another microphone, say) whose
    centre is 0.29 from the voice's (0.43 on average between windows, farther than the
    tree's 0.35), beside a second speaker: the cut counts three, the eigengap two, and
    the default takes the two, the side group joining its own voice."""
    a, far, other = separated(3)
    side = _unit(a + _unit(other - (other @ a) * a))  # cosine 0.71 to a
    vectors, truth = voices(np.stack([a, side, far]), [80, 12, 70], spread=0.03)
    assert len(set(cluster.cluster(vectors, estimator="distance").tolist())) == 3
    assert spectral.estimate(vectors) == 2
    assert same_grouping(cluster.cluster(vectors), (truth == 2).astype(np.int64))
    # under spectral.MIN_WINDOWS windows (24 s of speech) the cut's count stands alone
    few, _ = voices(np.stack([a, side, far]), [12, 3, 10], spread=0.03)
    assert len(set(cluster.cluster(few).tolist())) == 3


def test_a_voice_in_two_rooms_stays_one_speaker() -> None:
    """One speaker's windows in two tight sub-groups (0.1 apart in cosine distance) beside
    a second speaker: the eigengap alone counts three, the tree's cut two, and the
    smaller wins."""
    a, far, other = separated(3)
    a2 = _unit(a + 0.47 * _unit(other - (other @ a) * a))  # cosine 0.9 to a
    vectors, truth = voices(np.stack([a, a2, far]), [50, 50, 60], spread=0.015)
    assert spectral.estimate(vectors) == 3
    assert same_grouping(cluster.cluster(vectors), (truth == 2).astype(np.int64))


def test_an_unknown_estimator_is_refused() -> None:
    vectors, _ = voices(separated(2), [5, 5], spread=0.04)
    with pytest.raises(ValueError, match="estimator"):
        cluster.cluster(vectors, estimator="guess")
