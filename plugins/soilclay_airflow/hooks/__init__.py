"""Airflow hooks of soilclay."""
