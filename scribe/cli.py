"""The ``scribe`` command: one front for the batch job and the engine's tools.

Heavy modules are imported inside each command, so ``scribe --help`` starts instantly.
"""

from __future__ import annotations

import argparse
import sys


def _make_test_model(args: argparse.Namespace) -> int:
    from scribe.testmodel import make_test_model

    path = make_test_model(args.dir, args.size, n_mels=args.n_mels, seed=args.seed)
    sys.stdout.write(f"{path}\n")
    return 0


def _transcribe(rest: list[str]) -> int:
    from ray_jobs.transcribe import main

    return main(rest)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run one subcommand."""
    parser = argparse.ArgumentParser(
        prog="scribe", description="ray-scribe: transcribe recorded sessions on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("transcribe", add_help=False,
                   help="transcribe every session under a prefix (python -m ray_jobs.transcribe)")
    make = sub.add_parser(
        "make-test-model",
        help="write a random-weights Whisper model in CTranslate2 format (offline tests/demos)")
    make.add_argument("dir", help="directory to write the model into")
    make.add_argument("--size", default="tiny", choices=["tiny", "base", "small", "large-v3"])
    make.add_argument("--n-mels", type=int, default=None, help="80, or 128 (large-v3 layout)")
    make.add_argument("--seed", type=int, default=0)
    args, rest = parser.parse_known_args(argv)
    if args.command == "transcribe":
        return _transcribe(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return _make_test_model(args)


if __name__ == "__main__":
    sys.exit(main())
