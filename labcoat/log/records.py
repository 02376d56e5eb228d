"""What a record must be before the journal writes it: a known type, fields its event model
accepts, text that can be written as UTF-8. Used by `labcoat.log.writer`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from labcoat.log import events as ev

__all__ = ["BadEvent", "check_type", "plain", "validated"]


class BadEvent(ValueError):
    """An append the event models refuse: an unknown type, or fields that do not fit it.
    The message says which, in plain words (the caller may be a plugin's `ctx.emit`)."""


def check_type(type_: str) -> None:
    if type_ not in ev.EVENT_BY_TYPE:
        raise BadEvent(f"unknown event type {type_!r}; the log knows these types: "
                       f"{', '.join(sorted(ev.EVENT_BY_TYPE))}")


def _bad_fields(type_: str, err: ValidationError) -> BadEvent:
    problems = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        loc = loc[1:] if loc[:1] == [type_] else loc  # the union's tag comes first
        problems.append(f"{'.'.join(loc) or 'fields'}: {e['msg']}")
    return BadEvent(f"invalid {type_!r} event: {'; '.join(problems)}")


def validated(type_: str, record: dict[str, Any]) -> tuple[ev.EventBase, str]:
    """The event and its JSON. Text holding lone surrogates (bytes that were not UTF-8, or a
    model's "\\udcff") cannot be written as UTF-8: it is kept with those as visible escapes."""
    try:
        event = ev.event_adapter().validate_python(record)
        return event, event.model_dump_json()
    except ValidationError as err:
        raise _bad_fields(type_, err) from None
    except PydanticSerializationError:
        event = ev.event_adapter().validate_python(_escaped_surrogates(record))
        return event, event.model_dump_json()


def _escaped_surrogates(value: object) -> object:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_escaped_surrogates(k): _escaped_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped_surrogates(v) for v in value]
    return value


def plain(value: object) -> object:
    """Pydantic models (and lists of them) as JSON-ready dumps."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple) and any(isinstance(v, BaseModel) for v in value):
        return [plain(v) for v in value]
    return value
