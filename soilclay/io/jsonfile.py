"""Read a JSON object from a file (configs, recipes): every way it can be wrong is one BadInputError line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from soilclay.errors import BadInputError


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; a missing or unreadable file, bad JSON or another JSON value than an
    object raises :class:`BadInputError` naming ``what`` and the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"{what} file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{what} file {path} cannot be read as UTF-8 text: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{what} file {path} is not valid JSON: {exc.msg} at line {exc.lineno} "
                            f"column {exc.colno}") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{what} file {path} must hold a JSON object of fields, "
                            f"found a {type(data).__name__}")
    return data
