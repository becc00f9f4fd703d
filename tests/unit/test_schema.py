"""The transcript's types (:mod:`scribe.schema`) and the row codec's Arrow schema
(:mod:`ray_jobs.rows`) declare the same fields with the same types."""

from __future__ import annotations

import types
import typing
from typing import Any, get_args, get_origin, get_type_hints

import pyarrow as pa
import pytest

from ray_jobs import rows
from scribe import schema
from scribe.pipeline.transcript import empty_record, record_base

pytestmark = pytest.mark.unit

# keys a record's segments and words gain after the model: not in the rows between stages
RECORD_ONLY = frozenset({"id", "speaker"})


def _matches(hint: Any, arrow: pa.DataType) -> bool:
    """Whether a Python type hint and an Arrow type describe the same values."""
    if get_origin(hint) in (typing.Union, types.UnionType):  # X | None: Arrow is nullable
        (hint,) = [a for a in get_args(hint) if a is not type(None)]
    if hint is str:
        return bool(pa.types.is_string(arrow))
    if hint is bool:
        return bool(pa.types.is_boolean(arrow))
    if hint is int:
        return bool(pa.types.is_integer(arrow))
    if hint is float:
        return bool(pa.types.is_floating(arrow))
    if get_origin(hint) is list:
        return pa.types.is_list(arrow) and _matches(get_args(hint)[0], arrow.value_type)
    if get_origin(hint) is dict and get_args(hint)[1] is Any:  # free-form: a struct
        return bool(pa.types.is_struct(arrow))
    if get_origin(hint) is dict:
        return (pa.types.is_map(arrow) and _matches(get_args(hint)[0], arrow.key_type)
                and _matches(get_args(hint)[1], arrow.item_type))
    if typing.is_typeddict(hint):
        return pa.types.is_struct(arrow) and _same(hint, arrow, RECORD_ONLY)
    raise AssertionError(f"no Arrow counterpart known for {hint!r}")


def _same(typed: type, struct: pa.StructType, leave_out: frozenset[str] = frozenset()) -> bool:
    hints = {k: v for k, v in get_type_hints(typed).items() if k not in leave_out}
    fields = {struct.field(i).name: struct.field(i).type for i in range(struct.num_fields)}
    assert set(hints) == set(fields), (typed.__name__, set(hints) ^ set(fields))
    return all(_matches(hint, fields[name]) for name, hint in hints.items())


def test_the_rows_carry_the_record_base_as_declared() -> None:
    assert _same(schema.RecordBase, rows.SESSION)


def test_the_rows_carry_segments_and_words_as_declared() -> None:
    segments = rows.RESULT.field("segments").type
    assert _same(schema.Segment, segments.value_type, RECORD_ONLY)
    assert _same(schema.Word, segments.value_type.field("words").type.value_type,
                 RECORD_ONLY)


def test_the_checker_catches_a_field_of_another_type() -> None:
    wrong = pa.struct([(f.name, pa.string() if f.name == "duration_s" else f.type)
                       for f in rows.SESSION])
    assert not _same(schema.RecordBase, wrong)


def test_records_have_exactly_the_declared_keys() -> None:
    base = record_base("s", model="tiny")
    assert set(base) == set(get_type_hints(schema.RecordBase))
    assert set(empty_record(base)) == set(get_type_hints(schema.Record))
