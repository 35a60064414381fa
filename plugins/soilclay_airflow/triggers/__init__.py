"""Airflow triggers of soilclay."""
