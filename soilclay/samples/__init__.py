"""Soil samples: LUCAS-style topsoil CSV files, validated row by row and upserted into ``soilclay.samples``."""
