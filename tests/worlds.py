"""Moved to :mod:`soilclay.testing` (the test builders ship with the library). This shim only keeps
``tests/predict/test_predict.py`` importing until it imports ``soilclay.testing``; then delete this file."""

from soilclay.testing import AOI, FAST, prepared_world_db

__all__ = ["AOI", "FAST", "prepared_world_db"]
