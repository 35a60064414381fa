"""Which of a plan's scenes a recipe composites: one pure rule for both backends.

The local backend drops the scenes ruled out here before it reads a pixel; the Earth Engine backend
filters its collections by the ids of the scenes selected here (``system:index``), so both composite
exactly the scenes a composite's lineage names, and catalogue metadata is judged once, in Python:

- Sentinel-2: a scene whose cloud cover (``eo:cloud_cover``, Earth Engine's ``CLOUDY_PIXEL_PERCENTAGE``)
  is above ``max_scene_cloud_cover`` is ruled out (an input of the composite that contributes nothing).
- Sentinel-1: a scene of the other orbit pass is not part of the recipe at all; one that is not
  Interferometric Wide swath or lacks VV or VH (``sar:instrument_mode``, ``sar:polarizations`` where the
  catalogue states them; Earth Engine's listing only returns IW VV+VH 10 m scenes) is ruled out.

Scenes ruled out stay inputs of the composite (its inputs hash names them): computing again over the
same scenes gives the same composite. Scenes a backend cannot read are its own business.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from soilclay.composites.recipe import Recipe, S1Recipe, S2Recipe
from soilclay.contract import SceneRef
from soilclay.errors import BadInputError

if TYPE_CHECKING:
    from soilclay.composites.backend import CompositePlan

#: Sentinel-1 acquisition mode and polarisations the composite needs (VV, VH and their ratio).
S1_MODE = "IW"
S1_POLARISATIONS = ("VV", "VH")


@dataclass(frozen=True)
class Selection:
    """``selected``: the scenes to composite; ``ruled_out``: (scene id, reason) of inputs the recipe rules
    out by their metadata; ``outside``: ids of scenes not part of this recipe (another orbit pass)."""

    selected: tuple[SceneRef, ...]
    ruled_out: tuple[tuple[str, str], ...] = ()
    outside: tuple[str, ...] = ()

    @property
    def ids(self) -> list[str]:
        """The selected scenes' ids, sorted (as Earth Engine's ``system:index`` filter gets them)."""
        return sorted(s.scene_id for s in self.selected)


def select_s2(params: S2Recipe, scenes: Iterable[SceneRef]) -> Selection:
    selected, ruled_out = [], []
    for scene in scenes:
        if scene.cloud_cover is not None and scene.cloud_cover > params.max_scene_cloud_cover:
            ruled_out.append((scene.scene_id, f"cloud cover {scene.cloud_cover:.0f} % above the recipe's "
                                              f"{params.max_scene_cloud_cover:.0f} %"))
        else:
            selected.append(scene)
    return Selection(tuple(selected), tuple(ruled_out))


def _s1_problem(scene: SceneRef) -> str | None:
    mode = scene.properties.get("sar:instrument_mode")
    if mode is not None and str(mode).upper() != S1_MODE:
        return f"instrument mode {mode!r}, expected {S1_MODE!r}"
    polarisations = scene.properties.get("sar:polarizations")
    if polarisations is not None:
        missing = [p for p in S1_POLARISATIONS if p not in {str(v).upper() for v in polarisations}]
        if missing:
            return f"polarisations {list(polarisations)}, expected {' and '.join(S1_POLARISATIONS)}"
    return None


def select_s1(params: S1Recipe, scenes: Iterable[SceneRef]) -> Selection:
    selected, ruled_out, outside = [], [], []
    for scene in scenes:
        if params.orbit_pass != "both" and scene.orbit_state != params.orbit_pass:
            outside.append(scene.scene_id)
            continue
        problem = _s1_problem(scene)
        if problem is not None:
            ruled_out.append((scene.scene_id, problem))
        else:
            selected.append(scene)
    return Selection(tuple(selected), tuple(ruled_out), tuple(outside))


def select_for(recipe: Recipe, sensor: str, scenes: Iterable[SceneRef]) -> Selection:
    """The selection of ``sensor``'s part of ``recipe`` (``sentinel-2`` or ``sentinel-1``)."""
    params = recipe.s2 if sensor == "sentinel-2" else recipe.s1 if sensor == "sentinel-1" else None
    if params is None:
        raise BadInputError(f"recipe for {recipe.aoi} has no {sensor} part")
    return select_s2(params, scenes) if sensor == "sentinel-2" else select_s1(params, scenes)  # type: ignore[arg-type]


def selection_of(plan: CompositePlan) -> Selection:
    """The selection of a composite plan's scenes (what a backend composites for it)."""
    return select_for(plan.recipe, plan.sensor, plan.scenes)
