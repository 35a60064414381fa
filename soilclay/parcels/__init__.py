"""Parcels: field boundaries from national registers (LPIS / GSAA) and other vector files, checked,
given a stable id and upserted into ``soilclay.parcels`` (see :mod:`soilclay.parcels.load`)."""
