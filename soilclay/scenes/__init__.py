"""Scene arrival: list new Sentinel-1/2 scenes per AOI from a source and record them."""
