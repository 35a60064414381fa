"""Readers and writers at the edges: rasters (COG), object stores."""
