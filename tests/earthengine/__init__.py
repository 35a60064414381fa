"""Tests of :mod:`soilclay.earthengine`, offline."""
