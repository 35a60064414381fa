"""The builders' promise the DAG tests rest on: each copy of a state is a database of its own, and each
state holds what its stage promises and nothing of the stages after it."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from soilclay.testing import AOI, SAMPLES_SOURCE


def _counts(engine) -> dict[str, int]:
    tables = ("aois", "samples", "parcels", "scenes", "composites", "model_versions", "parcel_predictions")
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM soilclay.{t}")).scalar() for t in tables}


def test_a_copy_is_a_database_of_its_own(world_states):
    first, second = world_states.fresh("loaded"), world_states.fresh("loaded")
    assert first.url != second.url and first.root != second.root
    before = _counts(second.engine)
    with first.engine.begin() as conn:
        conn.execute(text("DELETE FROM soilclay.parcels"))
    assert _counts(first.engine)["parcels"] == 0
    assert _counts(second.engine) == before  # a change to one copy is not seen by another
    assert _counts(world_states.fresh("loaded").engine) == before  # nor by later copies (the template)


def test_loaded_then_scenes_hold_what_their_stage_promises_and_no_more(world_states):
    loaded = world_states.fresh("loaded")
    counts = _counts(loaded.engine)
    assert counts["aois"] == 1 and counts["samples"] > 100 and counts["parcels"] > 20
    assert counts["scenes"] == counts["composites"] == counts["model_versions"] == 0
    with loaded.engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM soilclay.aois")).scalar() == AOI
        assert conn.execute(text("SELECT DISTINCT source FROM soilclay.samples")).scalars().all() == [SAMPLES_SOURCE]

    scenes = _counts(world_states.fresh("scenes").engine)
    n_items = len(list((loaded.source / "scenes").rglob("*.json")))
    assert {k: v for k, v in scenes.items() if k != "scenes"} == {k: v for k, v in counts.items() if k != "scenes"}
    assert 200 < scenes["scenes"] <= n_items


def test_an_unknown_stage_is_refused(world_states):
    with pytest.raises(ValueError, match="unknown stage 'trained'"):
        world_states.fresh("trained")
