"""Airflow operators of soilclay."""
