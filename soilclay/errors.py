"""The small error tree of soilclay.

- :class:`BadInputError`: the input is wrong (a file, row or field); retrying will not help.
- :class:`NotReadyError` (a kind of bad input): a stage's prerequisite does not exist yet (no
  champion model, no composite); orchestration skips the stage, the prerequisite's event runs it later.
- :class:`TransientExternalError`: an external service failed in a way that may pass; retry.
- :class:`FinalExternalError`: an external service refused for good (auth, permission, bad request).
  Quota and rate limits are transient: they pass with time.

Orchestration retries only the transient kind.

One rule per kind of situation, wherever it happens:

- missing or invalid configuration (no Earth Engine project, a store URL of the wrong kind): bad input;
- a write that contradicts what is stored (an immutable object or a registered version that exists
  with other content, a violated key or constraint): bad input, naming both;
- a lost race (a serialisation failure, a deadlock, a decision made against a state that changed
  meanwhile): transient, since doing the work again decides anew;
- an external service that refuses for good (authentication, permission, a malformed request): final.

Each boundary (``soilclay.db.tx`` for the database, the object stores, the TF Serving clients,
``soilclay.earthengine`` for Earth Engine) translates its driver's errors into these once.
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
