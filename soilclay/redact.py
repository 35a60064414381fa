"""Credentials never leave the process in clear: masking of URLs, free text and log records.

A URL's password (``scheme://user:PASSWORD@host``) and the values of query parameters that carry
credentials (``?token=``, ``sig=``, ``X-Amz-Signature=``, ``key=``, …) are replaced by ``***``.
:func:`redact` masks every URL inside a text (an error message, a JSON dump of run parameters);
:class:`RedactingFilter` does the same to log records; :func:`secrets_of` lists the clear values so
that another masker (Airflow's) can be told about them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

MASK = "***"

#: Query parameter names (lower case) whose values are credentials; ``x-amz-*`` and ``x-goog-*``
#: signatures are matched by prefix.
SECRET_PARAMS = frozenset({
    "token", "access_token", "refresh_token", "id_token", "auth", "authorization", "apikey", "api_key", "key",
    "secret", "client_secret", "password", "passwd", "pwd", "sig", "signature", "credential", "credentials",
    "sas", "code",
})
_SECRET_PREFIXES = ("x-amz-", "x-goog-")

# userinfo with a password: scheme://user:password@  (the password may not contain '@', '/' or spaces)
_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*:)(?P<pw>[^\s@/]+)(?=@)")
# a query parameter: ?name=value or &name=value
_PARAM = re.compile(r"(?P<head>[?&;](?P<name>[A-Za-z0-9_.\-]+)=)(?P<value>[^&#\s'\"]*)")


def _is_secret_param(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_PARAMS or lowered.startswith(_SECRET_PREFIXES)


def redact(text: str) -> str:
    """``text`` with every URL password and credential query value replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: m["head"] + MASK, text)
    return _PARAM.sub(lambda m: m["head"] + (MASK if _is_secret_param(m["name"]) and m["value"] else m["value"]),
                      text)


def secrets_of(value: str) -> list[str]:
    """The clear credentials inside one URL (its password, its secret query values)."""
    found = [m["pw"] for m in _USERINFO.finditer(value)]
    try:
        query = urlsplit(value).query
    except ValueError:
        query = ""
    found += [v for k, v in parse_qsl(query, keep_blank_values=False) if _is_secret_param(k) and v]
    return found


class RedactingFilter(logging.Filter):
    """Masks credentials in a record's message and arguments (install on handlers, so that every
    logger's records pass through it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install(handlers: Iterable[logging.Handler] | None = None) -> None:
    """Put one :class:`RedactingFilter` on ``handlers`` (default: the root logger's)."""
    for handler in handlers if handlers is not None else logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
