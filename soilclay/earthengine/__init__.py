"""soilclay's Earth Engine layer: everything the stages need from the ``ee`` client, in small modules.

- :mod:`~soilclay.earthengine.session`: initialise ``ee`` for an explicit project and credentials.
- :mod:`~soilclay.earthengine.errors`: Earth Engine and HTTP failures -> soilclay's error tree (the rule).
- :mod:`~soilclay.earthengine.geometry`: GeoJSON -> ``ee.Geometry``, points, the export pixel lattice.
- :mod:`~soilclay.earthengine.assets`: catalogue asset ids, export descriptions, object names, COG URIs.
- :mod:`~soilclay.earthengine.filters`: catalogue filters shared by scene listing and composites.
- :mod:`~soilclay.earthengine.exports`: build, find and start Cloud Storage image exports.
- :mod:`~soilclay.earthengine.operations`: long-running operation state, the poll-error decision and
  the blocking wait; shared by the CLI and the Airflow operator/trigger.

The package imports only :mod:`soilclay.errors` from soilclay (never a stage), so the stages that use
Earth Engine (scenes, composites, features) depend on it and never on each other. ``errors``,
``assets`` and ``operations`` do not import ``ee`` (Airflow's triggerer and DAG files import them
cheaply); this ``__init__`` imports nothing.
"""
