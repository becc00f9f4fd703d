"""One loader for every config: YAML mappings overridden by flat flags, errors naming the
field, for the job's, the service's and a request's models alike."""

from __future__ import annotations

import argparse

import pytest
from pydantic import BaseModel

from scribe import config as cfg
from scribe.config import JobConfig, TranscribeOptions
from scribe.errors import InvalidParameterError
from serve_app.settings import ServeConfig

pytestmark = pytest.mark.unit

JOB_YAML = {"input": "in/", "output": "out/",
            "transcribe": {"model": "small", "beam_size": 2},
            "resources": {"actors_per_gpu": 3}}


def test_flags_override_the_yaml_in_the_group_that_declares_them() -> None:
    config = cfg.build(JobConfig, JOB_YAML, {"beam_size": 4, "model_batch_size": 8,
                                            "output": "elsewhere/"})
    assert config.output == "elsewhere/" and config.input == "in/"
    assert (config.transcribe.model, config.transcribe.beam_size) == ("small", 4)
    assert (config.resources.actors_per_gpu, config.resources.model_batch_size) == (3, 8)


def test_the_yaml_mapping_is_left_as_it_was() -> None:
    cfg.build(JobConfig, JOB_YAML, {"beam_size": 4})
    assert JOB_YAML["transcribe"] == {"model": "small", "beam_size": 2}


def test_an_empty_yaml_group_takes_flags() -> None:
    config = cfg.build(ServeConfig, {"server": None}, {"max_body_bytes": 10})
    assert config.server.max_body_bytes == 10


def test_a_flat_model_takes_flags_as_its_own_fields() -> None:
    base = TranscribeOptions(language="de").model_dump()
    options = cfg.build(TranscribeOptions, base, {"temperature": 0.5})
    assert (options.language, options.temperature) == ("de", 0.5)


@pytest.mark.parametrize(("model", "base", "flags", "param"), [
    (JobConfig, JOB_YAML, {"beam_size": 0}, "transcribe.beam_size"),
    (JobConfig, {"output": "out/"}, {}, "input"),
    (ServeConfig, {"server": {"retry_after_s": 0}}, {}, "server.retry_after_s"),
    (ServeConfig, {"servr": {}}, {}, "servr"),
    (TranscribeOptions, {}, {"language": "klingon"}, "language"),
])
def test_errors_name_the_field(model: type[BaseModel], base: dict[str, object],
                               flags: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        cfg.build(model, base, flags)
    assert caught.value.param == param


def test_flags_skip_the_groups_and_leave_unset_options_out() -> None:
    parser = argparse.ArgumentParser()
    cfg.add_arguments(parser, JobConfig)
    flags = vars(parser.parse_args(["--input", "x", "--overwrite"]))
    assert flags == {"input": "x", "overwrite": True}
    with pytest.raises(SystemExit):
        parser.parse_args(["--transcribe", "x"])


def test_a_number_that_may_be_unset_takes_none_from_the_command_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cfg.add_arguments(parser, TranscribeOptions)
    flags = vars(parser.parse_args(["--remainder-s", "none", "--max-new-tokens", "None",
                                    "--no-speech-threshold", "0.5"]))
    assert flags == {"remainder_s": None, "max_new_tokens": None, "no_speech_threshold": 0.5}
    options = cfg.build(TranscribeOptions, {"remainder_s": 2.0}, flags)
    assert options.remainder_s is None and options.no_speech_threshold == 0.5
    with pytest.raises(SystemExit):
        parser.parse_args(["--remainder-s", "soon"])
    assert "invalid float value: 'soon'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--beam-size", "none"])  # a number that must be set stays one
