"""The small error tree of soilclay.

- :class:`BadInputError`: the input is wrong (a file, row or field); retrying will not help.
- :class:`TransientExternalError`: an external service failed in a way that may pass; retry.
- :class:`FinalExternalError`: an external service refused for good (auth, permission, bad request).
  Quota and rate limits are transient: they pass with time.

Orchestration retries only the transient kind.
"""


class SoilclayError(Exception):
    """Base class of every error soilclay raises on purpose."""


class BadInputError(SoilclayError, ValueError):
    """Input data or configuration is invalid; the message names what was expected and found."""


class TransientExternalError(SoilclayError):
    """An external system failed in a way that may succeed on retry."""


class FinalExternalError(SoilclayError):
    """An external system failed for good; retrying will not help."""
