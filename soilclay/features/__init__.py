"""Features for the model: composite values at soil sample points (and later, per parcel)."""
