"""A pydantic validation error as one line a user can act on: the key as [section].key and
what is allowed there (used for specs, whose sections are pydantic models)."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError


def describe(exc: ValidationError, root: type[BaseModel]) -> str:
    """One line per problem, naming the key as [section].key and what is allowed."""
    problems = []
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        key = f"[{loc[0]}].{'.'.join(loc[1:])}" if len(loc) > 1 else f"[{loc[0]}]" if loc else ""
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc, root)
            problems.append(f"unknown key {key}; allowed keys: {allowed}")
        elif err["type"] == "literal_error":
            expected = err["ctx"]["expected"]
            problems.append(f"{key} = {err['input']!r} is not allowed; expected {expected}")
        elif err["type"] == "value_error" and not loc:
            problems.append(err["msg"].removeprefix("Value error, "))
        elif err["type"] == "value_error":
            problems.append(f"{key}: {err['msg'].removeprefix('Value error, ')}")
        else:
            problems.append(f"{key} = {err.get('input')!r}: {err['msg']}")
    return "; ".join(problems)


def _allowed_keys(loc: list[str], root: type[BaseModel]) -> str:
    model = root
    for part in loc[:-1]:
        annotation = model.model_fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return ", ".join(model.model_fields)
