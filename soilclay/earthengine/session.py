"""The Earth Engine session: ``ee`` initialised for an explicit Google Cloud project, with a
service-account key or the machine's default credentials.

``ee`` keeps one session per process: the last initialisation wins. Configuration mistakes found
here (empty project, half a service-account login, unreadable key, no credentials) are
:class:`BadInputError`; what Google answers is translated by :mod:`soilclay.earthengine.errors`.
Nothing here logs or quotes a key.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import ee

from soilclay.earthengine.errors import translated
from soilclay.errors import BadInputError

#: What ``ee`` says when neither stored nor Application Default credentials exist.
_NO_CREDENTIALS = "earthengine authenticate"


def initialize(project: str, service_account: str | None = None, key_file: str | None = None) -> None:
    """Initialise Earth Engine for ``project`` (always explicit, never guessed from the credentials).
    With ``service_account`` and ``key_file`` use that key; otherwise the default credentials
    (stored ``earthengine authenticate`` ones, else Application Default)."""
    if not isinstance(project, str) or not project.strip():
        raise BadInputError(f"Earth Engine needs an explicit Google Cloud project id; found {project!r}")
    if bool(service_account) != bool(key_file):
        raise BadInputError("Earth Engine service-account login needs both service_account and key_file; "
                            f"found service_account={service_account!r}, key_file={key_file!r}")
    try:
        credentials: Any = ee.ServiceAccountCredentials(service_account, key_file) if service_account \
            else "persistent"
    except OSError as exc:
        raise BadInputError(f"cannot read Earth Engine service-account key {key_file!r}: {exc.strerror}") from None
    except ValueError as exc:  # malformed key: no exception text, it could quote the key
        raise BadInputError(f"Earth Engine service-account key {key_file!r} is not a usable key "
                            f"({type(exc).__name__})") from None
    try:
        with translated(f"Earth Engine initialisation for project {project.strip()!r} failed"):
            ee.Initialize(credentials, project=project.strip())
    except Exception as exc:
        if _NO_CREDENTIALS in str(exc):
            raise BadInputError(f"no Earth Engine credentials on this machine for project {project.strip()!r}: "
                                "configure a service-account key or run `earthengine authenticate`") from exc
        raise


def initialize_with_key(project: str, key: Mapping[str, Any], service_account: str | None = None) -> None:
    """Initialise with a service-account key given as a dict: written to a private (0600) temporary
    file only for the time :func:`initialize` reads it. ``service_account`` defaults to the key's
    ``client_email``."""
    account = service_account_of(key, service_account)
    fd, path = tempfile.mkstemp(prefix="ee-key-", suffix=".json")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(key), handle)
        initialize(project, account, path)
    finally:
        os.unlink(path)


def read_key_file(path: str) -> dict[str, Any]:
    """The JSON service-account key at ``path``; errors name the path, never the content."""
    try:
        with open(path, encoding="utf-8") as handle:
            key = json.load(handle)
    except OSError as exc:
        raise BadInputError(f"cannot read service-account key {path!r}: {exc.strerror}") from None
    except ValueError:
        raise BadInputError(f"service-account key {path!r} is not valid JSON") from None
    if not isinstance(key, dict):
        raise BadInputError(f"service-account key {path!r} is not a JSON object")
    return key


def service_account_of(key: Mapping[str, Any], service_account: str | None = None) -> str:
    """The account to log in as: ``service_account`` when given, else the key's ``client_email``."""
    account = service_account or key.get("client_email")
    if not account or not isinstance(account, str):
        raise BadInputError("the service-account key has no client_email; name the service account explicitly")
    return account
