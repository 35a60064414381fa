"""Unit tests of the local Airflow deployment machinery (no Airflow processes)."""
