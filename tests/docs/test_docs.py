"""The documentation tier: every shell block of README.md and docs/*.md, run as written.

A fresh ``git clone`` of this repository's HEAD (plus uncommitted changes to tracked
files) in a temporary folder; a fresh venv that holds only what the blocks before have
installed (one venv for the whole tier, in reading order: README.md, then docs/*.md by
name); the real tiny.en
from the ``offline`` extra, no Hugging Face (``HF_HUB_OFFLINE=1``). Each block runs with
``bash -e -o pipefail`` in the clone, in a PID namespace of its own (``unshare``): ``ray
stop`` there sees only that block's processes, and whatever the block leaves running is
reported as a failure and then ends with the namespace. ``HOME`` and ``TMPDIR`` are
folders of the tier's, so a block finds no other Ray's ``/tmp/ray`` record and no token or
plan file of the machine's. Blocks marked ``<!-- docs-test: skip (reason) -->`` are
reported as skipped with their reason. Conventions: :mod:`tests.docs.blocks`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs.blocks import Block, blocks
from tests.s3 import S3Server

pytestmark = [pytest.mark.docs, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BLOCK_TIMEOUT_S = 1200  # an install step plus a job: ~11 min at a load average of 56 on 2 cores
HEAD_START_S = 180
LEFTOVER_GRACE_S = 30  # a stopped server draining (Serve, Ray) ends within it
BUCKET = "bucket"
# Programs of another Python environment (the test venv's, pyenv's shims): a block must
# find only what its own venv installed.
FOREIGN_PROGRAMS = ("ray", "scribe", "pytest", "serve", "pyenv")
PASSED_THROUGH = ("LANG", "LC_ALL", "TERM", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                  "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR",
                  "REQUESTS_CA_BUNDLE")

# Run inside the block's PID namespace as its init: the block, then whatever it left.
WRAPPER = r"""
bash -e -o pipefail "$1"
rc=$?
"$2" "$3"
left=$?
[ $rc -eq 0 ] || exit $rc
[ $left -eq 0 ] || exit 97
"""

# Processes other than init and this one, waited out for a grace period, then named.
LEFTOVERS = rf"""
import os, sys, time
def others():
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) not in (1, os.getpid()):
            try:
                found.append(pid + " " + open(f"/proc/{{pid}}/cmdline", "rb").read()
                             .replace(b"\0", b" ").decode(errors="replace")[:200])
            except OSError:
                pass
    return found
deadline = time.monotonic() + {LEFTOVER_GRACE_S}
while others() and time.monotonic() < deadline:
    time.sleep(1)
left = others()
if left:
    print("docs-test: still running after the block:", *left, sep="\n  ")
    sys.exit(1)
"""

ALL_BLOCKS = blocks(REPO)


@dataclass
class Tier:
    """The clone, the venv and the environment every block gets."""

    clone: Path
    work: Path
    env: dict[str, str]
    head: Head | None = None


@dataclass
class Head:
    """The Ray head ``HEAD`` stands for: started by the tier, from the venv, in a PID
    namespace of its own whose init is ``ray start --block`` (SIGTERM drains and stops it)."""

    process: subprocess.Popen[bytes]
    gcs_port: int
    dashboard_port: int

    def substitute(self, text: str) -> str:
        text = re.sub(r"\bHEAD:8265\b", f"127.0.0.1:{self.dashboard_port}", text)
        text = re.sub(r"\bHEAD:6379\b", f"127.0.0.1:{self.gcs_port}", text)
        return re.sub(r"\bHEAD\b", "127.0.0.1", text)

    def stop(self) -> None:
        """SIGTERM to ``ray start --block``, then wait until it has drained and its
        namespace is gone."""
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        # unshare's own process ignores SIGTERM while its child runs: signal the child
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGTERM)
        try:
            self.process.wait(timeout=90)  # Ray drains for up to 30 s
        except subprocess.TimeoutExpired:
            self.process.kill()  # --kill-child: its namespace goes with it
            self.process.wait()


def _needs_namespace() -> None:
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("the docs tier runs each block in a PID namespace (unshare --pid, root): "
                    + probe.stderr.strip())


def _clean_path() -> str:
    keep = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        foreign = "pyenv" in folder or any(
            os.access(os.path.join(folder, name), os.X_OK) for name in FOREIGN_PROGRAMS)
        if folder and not foreign:
            keep.append(folder)
    return os.pathsep.join(keep)


def _clone(clone: Path) -> None:
    """A fresh clone of HEAD, plus the uncommitted changes to tracked files (none in CI),
    so the blocks run beside the code and documents they were read from."""
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=REPO, check=True,
                          capture_output=True).stdout
    if diff:
        subprocess.run(["git", "apply", "--whitespace=nowarn"], cwd=clone, input=diff,
                       check=True)


def _seed_bucket(server: S3Server) -> None:
    server.create_bucket(BUCKET)
    client = server.client()
    for clip in sorted((REPO / "examples" / "sessions").iterdir()):
        client.upload_file(str(clip), BUCKET, f"sessions/{clip.name}")


@pytest.fixture(scope="module")
def tier() -> Iterator[Tier]:
    _needs_namespace()
    if not (REPO / ".git").exists():
        pytest.skip("the docs tier clones the repository: this copy is not a git checkout")
    # Short: Ray's socket paths live under TMPDIR and must stay under 108 bytes.
    work = Path(tempfile.mkdtemp(prefix="dt", dir="/tmp"))
    server = S3Server.start()
    try:
        _seed_bucket(server)
        clone = work / "clone"
        _clone(clone)
        subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
        for folder in ("home", "tmp"):
            (work / folder).mkdir()
        env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
        env |= {name: value for name, value in os.environ.items() if name.startswith("PIP_")}
        env |= server.env() | {
            "PATH": f"{work / 'venv' / 'bin'}{os.pathsep}{_clean_path()}",
            "VIRTUAL_ENV": str(work / "venv"),
            "HOME": str(work / "home"),
            "TMPDIR": str(work / "tmp"),
            # pip's cache outlives the tier (the home above does not): reruns reuse wheels
            "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR",
                                            os.path.expanduser("~/.cache/pip")),
            "HF_HUB_OFFLINE": "1",
        }
        started = time.monotonic()
        state = Tier(clone, work, env)
        try:
            yield state
        finally:
            if state.head:
                state.head.stop()
        print(f"docs tier: {time.monotonic() - started:.0f} s for "
              f"{sum(not b.skip for b in ALL_BLOCKS)} blocks")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _start_head(tier: Tier) -> Head:
    """A head for the blocks that name ``HEAD``, on free ports, with the tier's bucket
    credentials (as a cluster's nodes hold theirs)."""
    folder = Path(tempfile.mkdtemp(prefix="head", dir=tier.work / "tmp"))
    gcs, dashboard, agent, client = (_free_port() for _ in range(4))
    env = tier.env | {"RAY_AUTH_MODE": "token"}
    subprocess.run(["ray", "get-auth-token", "--generate"], env=env, check=True,
                   capture_output=True)
    log = (tier.work / "head.log").open("wb")
    process = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM", "ray", "start",
         "--head", "--port", str(gcs), "--dashboard-port", str(dashboard),
         "--dashboard-agent-listen-port", str(agent), "--ray-client-server-port", str(client),
         "--temp-dir", str(folder), "--block"],
        env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    head = Head(process, gcs, dashboard)
    deadline = time.monotonic() + HEAD_START_S
    while not _answers(f"http://127.0.0.1:{agent}/api/healthz"):
        if process.poll() is not None or time.monotonic() > deadline:
            head.stop()
            said = (tier.work / "head.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"the tier's head for HEAD did not start (from the venv's ray):\n{said}")
        time.sleep(1)
    return head


def _run(tier: Tier, block: Block) -> subprocess.CompletedProcess[str]:
    text = block.text
    env = tier.env
    if block.uses_head:
        tier.head = tier.head or _start_head(tier)
        text = tier.head.substitute(text)
        env = env | {"RAY_AUTH_MODE": "token"}  # a laptop holding the head's token
    script = tier.work / "block.sh"
    script.write_text(text + "\n")
    wrapper = tier.work / "wrapper.sh"
    wrapper.write_text(WRAPPER)
    leftovers = tier.work / "leftovers.py"
    leftovers.write_text(LEFTOVERS)
    command = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
               "bash", str(wrapper), str(script), sys.executable, str(leftovers)]
    return subprocess.run(command, cwd=tier.clone, env=env, capture_output=True,
                          text=True, timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL)


def _report(block: Block, run: subprocess.CompletedProcess[str], what: str) -> str:
    output = (run.stdout + run.stderr)[-6000:]
    return (f"{block.where}: the {block.language} block {what} (exit {run.returncode})\n"
            f"--- the block ---\n{block.text}\n--- its output (the end) ---\n{output}")


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.where for b in ALL_BLOCKS])
def test_block_runs_as_written(block: Block, tier: Tier) -> None:
    if block.skip:
        pytest.skip(f"{block.where}: {block.skip}")
    try:
        run = _run(tier, block)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.where}: the block ran past {BLOCK_TIMEOUT_S} s\n"
                    f"--- the block ---\n{block.text}\n--- its output ---\n{exc.output!r}")
    if run.returncode == 97:
        pytest.fail(_report(block, run, "left processes running"))
    assert run.returncode == 0, _report(block, run, "failed")
    for text in block.expect:
        assert text in run.stdout, _report(block, run, f"did not print {text!r}")


def test_a_block_that_leaves_a_process_running_is_named(tmp_path: Path) -> None:
    _needs_namespace()
    bare = Tier(tmp_path, tmp_path, {"PATH": _clean_path(), "HOME": str(tmp_path)})
    left = Block("page.md", 3, "bash", "sleep 600 &\necho started", None)
    run = _run(bare, left)
    assert run.returncode == 97
    assert "still running after the block" in run.stdout and "sleep 600" in run.stdout
    failed = Block("page.md", 9, "bash", "false\necho never", None)
    run = _run(bare, failed)
    assert run.returncode == 1 and "never" not in run.stdout
    assert "page.md:9: the bash block failed (exit 1)" in _report(failed, run, "failed")
