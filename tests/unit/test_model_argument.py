"""`--model` given as a path: never sent to the hub, and its errors say what is wrong and
what `--model` accepts (issue 35: a fresh clone's `$PWD/models/test-tiny` was answered
with "not cached and huggingface.co is unreachable" and a download command for a path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scribe.capacity import doctor
from scribe.errors import ModelLoadError
from scribe.pipeline.bundled import looks_like_path, model_folder_problem
from scribe.pipeline.whisper import resolve_model_path

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["/abs/models/test-tiny", "./models/x", "../x", "~/models/x",
                                  ".", "~"])
def test_names_that_look_like_paths(name: str) -> None:
    assert looks_like_path(name)


@pytest.mark.parametrize("name", ["large-v3", "tiny.en", "Systran/faster-whisper-small"])
def test_names_and_repo_ids_do_not(name: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert not looks_like_path(name)


def test_a_relative_name_under_an_existing_folder_is_a_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert not looks_like_path("models/test-tiny")
    (tmp_path / "models").mkdir()
    assert looks_like_path("models/test-tiny")
    with pytest.raises(ModelLoadError, match="no model folder at models/test-tiny"):
        resolve_model_path("models/test-tiny")


@pytest.mark.parametrize("spelling", ["absolute", "home"])
def test_a_missing_folder_says_so_and_lists_what_model_takes(
        spelling: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    name = str(tmp_path / "test-tiny") if spelling == "absolute" else "~/test-tiny"
    with pytest.raises(ModelLoadError) as caught:
        resolve_model_path(name)
    message = str(caught.value)
    assert f"no model folder at {tmp_path / 'test-tiny'}" in message
    for choice in ("tiny.en", "CTranslate2 Whisper folder", "Hugging Face name"):
        assert choice in message
    result = doctor.check_model(name)
    assert result.status == "fail" and result.message == message
    assert "huggingface" not in result.fix and "unreachable" not in result.message


def test_a_folder_without_the_model_files_names_the_missing_ones(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "vocabulary.txt").write_text("")
    problem = model_folder_problem(str(tmp_path))
    assert problem == (f"{tmp_path} is not a CTranslate2 Whisper model folder: it lacks "
                       "model.bin, tokenizer.json (it holds config.json, vocabulary.txt)")
    with pytest.raises(ModelLoadError, match="lacks model.bin, tokenizer.json"):
        resolve_model_path(str(tmp_path))
    result = doctor.check_model(str(tmp_path))
    assert result.status == "fail" and "ct2-transformers-converter" in result.fix


def test_an_empty_folder_lacks_everything(tmp_path: Path) -> None:
    problem = model_folder_problem(str(tmp_path))
    assert problem is not None and problem.endswith(
        "it lacks model.bin, config.json, tokenizer.json, vocabulary.json or vocabulary.txt "
        "(it holds nothing)")


def test_a_model_folder_under_home_resolves(tiny_model: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    os.symlink(tiny_model, tmp_path / "m")
    assert resolve_model_path("~/m") == str(tmp_path / "m")
    assert doctor.check_model("~/m").status == "ok"
    assert doctor.check_disk("~/m").status == "ok"


def test_the_job_refuses_a_missing_model_folder_before_reading_audio(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "test-tiny"
    run = subprocess.run(
        [sys.executable, "-m", "ray_jobs.transcribe", "--input", str(REPO / "examples/sessions"),
         "--output", str(tmp_path / "out"), "--model", str(missing), "--device", "cpu"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"no model folder at {missing}" in run.stderr
    assert "huggingface" not in run.stderr.lower()
    assert not (tmp_path / "out" / "jfk.json").exists()
