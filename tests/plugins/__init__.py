"""Tests of the Airflow plugin code under ``plugins/``."""
