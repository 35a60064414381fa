"""The small error tree of soilclay.

- :class:`BadInputError`: the input is wrong (a file, row or field); retrying will not help.
- :class:`NotReadyError` (a kind of bad input): a stage's prerequisite does not exist yet (no
  champion model, no composite); orchestration skips the stage, the prerequisite's event runs it later.
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


class NotReadyError(BadInputError):
    """A prerequisite of the stage does not exist yet (e.g. no champion model); the message says which."""


class ChampionChangedError(BadInputError):
    """Estimates were planned (or requested) for a model version that is no longer the champion."""
