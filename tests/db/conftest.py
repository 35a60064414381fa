import pytest


@pytest.fixture
def conn(engine):
    """A connection whose work is rolled back after the test."""
    with engine.connect() as c:
        tx = c.begin()
        yield c
        tx.rollback()
