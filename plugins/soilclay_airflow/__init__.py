"""soilclay's Airflow plugin code: the Earth Engine hook, trigger and deferrable export operator.

Airflow puts ``plugins/`` on ``sys.path``, so DAGs import ``soilclay_airflow.operators.earthengine``.
Hook, trigger and operator live in mirrored files (``hooks/``, ``triggers/``, ``operators/``) as in
Airflow's Google provider; whether an export is done or failed is decided only by
:func:`soilclay.earthengine.operations.export_outcome`, on both the waiting and the deferrable path.
"""
