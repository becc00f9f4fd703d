"""The speaker benchmark's yardsticks: its DER and its harder conversations are what they
claim (three and four speakers, 0.3-1 s backchannels, 10-20% overlapped speech)."""

from __future__ import annotations

import pytest

from benchmarks.speakers import der
from tests import conversations as c

pytestmark = pytest.mark.unit

REFERENCE = [(0.0, 4.0, "A"), (4.0, 8.0, "B"), (6.0, 7.0, "C")]


def test_der_maps_names_and_counts_each_error() -> None:
    renamed = [(s, e, {"A": "x", "B": "y", "C": "z"}[who]) for s, e, who in REFERENCE]
    assert der(REFERENCE, renamed, 8.0).der == 0.0
    missed = der(REFERENCE, REFERENCE[:2], 8.0)
    assert missed.missed > 0 and missed.confusion == 0 and missed.false_alarm == 0
    merged = der(REFERENCE, [(0.0, 8.0, "x")], 8.0)
    assert merged.confusion > 0 and merged.found == (1,) and merged.right_count == 0
    # a boundary off by less than the 0.25 s collar costs nothing
    shifted = [(0.0, 4.2, "A"), (4.2, 8.0, "B"), (6.0, 7.0, "C")]
    assert der(REFERENCE, shifted, 8.0).der == 0.0


@pytest.mark.parametrize("voices", [c.GROUPS[0], c.GROUPS[2]])
def test_group_conversations_are_as_hard_as_stated(voices: tuple[str, ...]) -> None:
    conv = c.group_conversation(tuple(c.espeak_voices((v, v))[0] for v in voices),
                                tuple(c.espeak_backchannels(v) for v in voices), seed=1)
    assert {who for _, _, who in conv.turns} == set("ABCD"[:len(voices)])
    short = [e - s for s, e, _ in conv.turns if e - s < 1.0]
    assert short and all(0.3 <= d <= 1.0 for d in short)
    assert 0.08 <= c.overlap_share(conv) <= 0.25
