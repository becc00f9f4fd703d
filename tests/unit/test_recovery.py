"""The passes after a node loss: the watch that calls a pass stalled, and the passes that
run again only what was not finished."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ray_jobs import recovery
from ray_jobs.recovery import JobStalledError, PassStalled, StallWatch, rows_in_passes
from scribe.io.sessions import SessionRef

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _watch(nodes: set[str], clock: Clock, timeout_s: float = 10.0) -> StallWatch:
    return StallWatch(timeout_s, lambda: set(nodes), clock)


def test_a_pass_stalls_only_once_a_node_it_ran_on_is_gone_and_nothing_came_since() -> None:
    nodes, clock = {"a", "b"}, Clock()
    watch = _watch(nodes, clock)
    clock.now = 100.0
    watch.check()  # quiet for long, but every node is there: model loads, long sessions
    assert not watch.node_lost
    nodes.discard("b")
    clock.now = 100.0 + recovery.NODE_POLL_S
    watch.check()  # the loss is seen; the timeout counts from it
    assert watch.node_lost
    clock.now += 5.0
    watch.block()
    clock.now += 7.0
    watch.check()  # a block 7 s ago
    clock.now += 3.5
    with pytest.raises(PassStalled, match="since a node was lost"):
        watch.check()


def test_a_node_that_joins_and_leaves_mid_pass_counts_as_lost() -> None:
    nodes, clock = {"a"}, Clock()
    watch = _watch(nodes, clock)
    nodes.add("c")
    clock.now = recovery.NODE_POLL_S
    watch.check()
    nodes.discard("c")
    clock.now = 2 * recovery.NODE_POLL_S
    watch.check()
    assert watch.node_lost


def _sessions(count: int) -> list[SessionRef]:
    return [SessionRef(session_id=f"s{i}", uri=f"/in/s{i}.wav") for i in range(count)]


def _passes(sessions: list[SessionRef], finish_per_pass: list[int], lost: bool = True,
            pass_size: int = 0, out: list[str] | None = None
            ) -> tuple[list[list[str]], list[str], int]:
    """Run rows_in_passes over passes that each finish so many sessions, then stall (a
    node lost) until the last; what each pass was given, what came out, restarts."""
    given: list[list[str]] = []
    finished: set[str] = set()
    out = [] if out is None else out
    restarts = 0
    alive: set[str] = set()
    clock = Clock()

    def new_watch() -> StallWatch:
        alive.update({"a", "b"})
        return StallWatch(10.0, lambda: set(alive), clock)

    def run_pass(todo: list[SessionRef], watch: StallWatch) -> Iterator[str]:
        given.append([s.session_id for s in todo])
        count = finish_per_pass[len(given) - 1]
        for session in todo[:count]:
            yield session.session_id
        if count < len(todo):
            if lost:
                alive.discard("b")
                clock.now += recovery.NODE_POLL_S
                watch.check()
            raise PassStalled("stalled")

    def restart() -> None:
        nonlocal restarts
        restarts += 1

    for sid in rows_in_passes(sessions, run_pass, new_watch, lambda: finished, restart,
                              pass_size=pass_size, between=lambda: out.append("|")):
        finished.add(sid)
        out.append(sid)
    return given, out, restarts


def test_a_stalled_pass_is_followed_by_one_over_the_unfinished_sessions_only() -> None:
    given, out, restarts = _passes(_sessions(5), [2, 0, 3])
    assert given == [["s0", "s1", "s2", "s3", "s4"], ["s2", "s3", "s4"], ["s2", "s3", "s4"]]
    assert sorted(out) == ["s0", "s1", "s2", "s3", "s4"] and len(out) == 5
    assert restarts == 2


def test_a_bucket_runs_in_passes_of_the_size_given_in_order() -> None:
    given, out, restarts = _passes(_sessions(7), [3, 3, 1], pass_size=3)
    assert given == [["s0", "s1", "s2"], ["s3", "s4", "s5"], ["s6"]]
    assert [s for s in out if s != "|"] == [f"s{i}" for i in range(7)] and restarts == 0


def test_a_stall_in_a_bounded_pass_runs_again_only_that_pass_unfinished() -> None:
    given, out, restarts = _passes(_sessions(6), [3, 1, 2], pass_size=3)
    assert given == [["s0", "s1", "s2"], ["s3", "s4", "s5"], ["s4", "s5"]]
    assert out == ["s0", "s1", "s2", "|", "s3", "s4", "s5"]
    assert restarts == 1


def test_the_driver_lets_go_of_a_pass_between_passes_only() -> None:
    events: list[str] = []
    _passes(_sessions(7), [3, 3, 1], pass_size=3, out=events)
    assert events == ["s0", "s1", "s2", "|", "s3", "s4", "s5", "|", "s6"]
    events.clear()
    _passes(_sessions(3), [1, 2], out=events)  # one pass, run twice after a node loss
    assert "|" not in events


def test_freed_memory_is_handed_back_on_glibc() -> None:
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip(f"malloc_trim is glibc's; this C library is {platform.libc_ver()}")
    assert recovery.release_freed_memory()


def test_passes_that_finish_nothing_end_the_job_with_an_error_not_a_wait() -> None:
    with pytest.raises(JobStalledError, match="a rerun transcribes only the rest"):
        _passes(_sessions(3), [1] + [0] * recovery.BARREN_PASSES)


def test_a_failure_without_a_node_loss_is_not_retried() -> None:
    with pytest.raises(PassStalled):
        _passes(_sessions(3), [1, 3], lost=False)


def test_a_stalled_job_exits_3_not_the_status_of_bad_usage(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ray_jobs import transcribe

    def stalled(config: object) -> None:
        raise JobStalledError("3 passes in a row finished no session")

    monkeypatch.setattr(transcribe, "run_job", stalled)
    assert transcribe.main(["--input", str(tmp_path), "--output", str(tmp_path / "o")]) == 3
