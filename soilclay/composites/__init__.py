"""Bare-soil Sentinel-2 and Sentinel-1 composites: one recipe, two backends (local, Earth Engine)."""
