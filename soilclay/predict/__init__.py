"""Per-parcel clay estimates: composite pixels inside each parcel → predictor → aggregation → PostGIS."""
