"""Test builders that ship with the library: database states on the small demo world.

:mod:`soilclay.testing.worlds` builds, through soilclay's own stage functions (never SQL), the states
the pipeline's stages leave behind -- "the AOI, samples and parcels loaded", "+ scenes recorded",
"+ composites built", "+ a champion model" -- once each, and hands every test a copy of its own
(:class:`~soilclay.testing.worlds.WorldStates`). The library calls they make are gathered in one section
of that module, so a refactoring of the stages is followed in one place.
"""

from soilclay.testing.worlds import (
    AOI,
    FAST,
    SAMPLES_SOURCE,
    STAGES,
    RelabelledSource,
    World,
    WorldStates,
    build_world_composites,
    load_by_hand,
    prepared_world_db,
    record_world_scenes,
    register_world_aoi,
    train_champion,
)

__all__ = [
    "AOI",
    "FAST",
    "SAMPLES_SOURCE",
    "STAGES",
    "RelabelledSource",
    "World",
    "WorldStates",
    "build_world_composites",
    "load_by_hand",
    "prepared_world_db",
    "record_world_scenes",
    "register_world_aoi",
    "train_champion",
]
