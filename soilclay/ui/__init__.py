"""The parcel map and status page: a FastAPI app (vector tiles, parcel detail, per-AOI status, the page and
its static files) that Airflow's api-server serves through the plugin ``plugins/soilclay_parcel_map.py``.

The app knows nothing of Airflow: the plugin gives it the dependency that authenticates a request and
the login address (:func:`soilclay.ui.app.create_app`); all SQL is in :mod:`soilclay.db.parcel_map`.
"""
