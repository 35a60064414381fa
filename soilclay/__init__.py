"""soilclay: per-parcel topsoil clay from Sentinel-1/2 bare-soil composites.

The package holds all the logic; Airflow DAGs in ``dags/`` only orchestrate it.
Stages live in sub-packages named after them (``demo``, ``db``, ...).
"""

__version__ = "0.1.0"
