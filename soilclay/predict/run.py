"""Estimate clay for an AOI's parcels with the champion model on the newest composites.

Only parcels whose current geometry has no estimate for this (model version, composite versions) are
computed, so a re-run does nothing, an interrupted run resumes, and a reshaped parcel is estimated anew.
The predictor is the champion SavedModel in-process (the default) or TF Serving pinned to the champion
version (:mod:`soilclay.serving.factory`).

What one run does is a frozen, validated :class:`PredictRequest`: the AOI, the run id, the expected
champion version, a :class:`CompositePin` per sensor (:data:`NEWEST`, :data:`NONE` or one composite
id), an optional ``parcel_key`` range and the pixel options. For parallel work (one Airflow task per
chunk) :func:`plan_predictions` fixes the champion version and the composites once and cuts the AOI's
parcels into ranges of ``parcel_key`` (:mod:`soilclay.db.parcels`); :meth:`PredictPlan.request_for` makes
the request of one chunk, and :func:`predict_aoi` refuses to run it when the champion has changed since the
plan (mixing two models in one run would leave a map stitched from both).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy import Engine

from soilclay.db import composites as composite_rows
from soilclay.db import parcels as parcels_repo
from soilclay.db.aois import get_aoi
from soilclay.db.tx import reading
from soilclay.errors import BadInputError, ChampionChangedError, NotReadyError
from soilclay.io.store.local_copy import local_path
from soilclay.predict.aggregate import aggregate
from soilclay.predict.pixels import parcel_pixels
from soilclay.predict.write import write_estimates

log = logging.getLogger(__name__)

#: More mapped tasks than this is a planning mistake (Airflow's max_map_length is 1024): chunks grow.
MAX_CHUNKS = 1000


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


@dataclass(frozen=True)
class CompositePin:
    """Which composite of a sensor a run uses: ``newest`` (the AOI's newest version), ``none`` (no composite
    of that sensor; Sentinel-1 only) or ``id`` (the composite ``composite_id``, checked to be the AOI's)."""

    kind: Literal["newest", "none", "id"]
    composite_id: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("newest", "none", "id"):
            raise BadInputError(f"a composite pin is 'newest', 'none' or 'id', found {self.kind!r}")
        if (self.kind == "id") != (self.composite_id is not None):
            raise BadInputError(f"a composite pin has an id exactly when its kind is 'id', found kind "
                                f"{self.kind!r} with composite_id {self.composite_id!r}")
        if self.composite_id is not None and not _is_int(self.composite_id, 1):
            raise BadInputError(f"composite_id must be an integer >= 1, found {self.composite_id!r}")

    @classmethod
    def of(cls, composite_id: int) -> CompositePin:
        """The composite ``composite_id``."""
        return cls("id", composite_id)

    @classmethod
    def exactly(cls, composite_id: int | None) -> CompositePin:
        """Exactly what was planned: the composite ``composite_id``, or none when it is None."""
        return NONE if composite_id is None else cls.of(composite_id)

    def __str__(self) -> str:
        return f"composite {self.composite_id}" if self.kind == "id" else self.kind


NEWEST = CompositePin("newest")
NONE = CompositePin("none")


@dataclass(frozen=True)
class PredictRequest:
    """One prediction run. ``model_version``: the champion expected (None: whatever it is);
    ``parcel_range``: inclusive ``parcel_key`` bounds (None: every parcel of the AOI);
    ``max_pixels`` usable pixels per parcel at most (sampled), ``min_pixels`` fewer usable ones give a flag
    and no number, ``inward_buffer_m`` metres shaved off parcel edges; ``workdir`` holds downloads."""

    aoi: str
    run_id: str
    model_version: int | None = None
    s2: CompositePin = NEWEST
    s1: CompositePin = NEWEST
    parcel_range: tuple[int, int] | None = None
    max_pixels: int = 200
    min_pixels: int = 3
    inward_buffer_m: float = 0.0
    workdir: Path | None = None

    def __post_init__(self) -> None:
        for name in ("aoi", "run_id"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise BadInputError(f"{name} must be a non-empty string, found {getattr(self, name)!r}")
        if self.model_version is not None and not _is_int(self.model_version, 1):
            raise BadInputError(f"model_version must be an integer >= 1 or None, found {self.model_version!r}")
        for name in ("s2", "s1"):
            if not isinstance(getattr(self, name), CompositePin):
                raise BadInputError(f"{name} must be a CompositePin (NEWEST, NONE or CompositePin.of(id)), found "
                                    f"{getattr(self, name)!r}")
        if self.s2 == NONE:
            raise BadInputError("estimates need a Sentinel-2 composite: s2 may be NEWEST or an id, not NONE")
        if self.parcel_range is not None:
            bounds = tuple(self.parcel_range) if isinstance(self.parcel_range, list | tuple) else ()
            if len(bounds) != 2 or not all(_is_int(b, 1) for b in bounds) or bounds[0] > bounds[1]:
                raise BadInputError(f"parcel_range must be (first, last) parcel keys (integers >= 1) with "
                                    f"first <= last, found {self.parcel_range!r}")
            object.__setattr__(self, "parcel_range", bounds)
        if not _is_int(self.max_pixels, 1):
            raise BadInputError(f"max_pixels must be an integer >= 1, found {self.max_pixels!r}")
        if not _is_int(self.min_pixels, 0):
            raise BadInputError(f"min_pixels must be an integer >= 0, found {self.min_pixels!r}")
        buffer = self.inward_buffer_m
        if isinstance(buffer, bool) or not isinstance(buffer, int | float) or not (0 <= buffer < math.inf):
            raise BadInputError(f"inward_buffer_m must be a finite number of metres >= 0, found {buffer!r}")
        if self.workdir is not None:
            object.__setattr__(self, "workdir", Path(self.workdir))


@dataclass
class PredictOutcome:
    aoi: str
    model_version: int
    s2_composite_id: int
    s1_composite_id: int | None
    parcels_in_aoi: int
    estimated: int
    written: int
    flagged: dict[str, int]
    pixels: int
    seconds: float

    def render(self) -> str:
        flags = ", ".join(f"{k} {v}" for k, v in sorted(self.flagged.items())) or "none"
        if self.estimated == 0:
            return (f"AOI {self.aoi}: all {self.parcels_in_aoi} parcels already have estimates from model "
                    f"v{self.model_version} on composites {self.s2_composite_id}/{self.s1_composite_id}; nothing to do")
        return (f"AOI {self.aoi}: {self.estimated} parcels estimated ({self.written} rows written) with model "
                f"v{self.model_version} on composites S2 {self.s2_composite_id}, S1 {self.s1_composite_id}; "
                f"{self.pixels:,} pixels; flags: {flags}; {self.seconds:.1f} s "
                f"({self.estimated / max(self.seconds, 1e-9):,.0f} parcels/s)")


@dataclass(frozen=True)
class PredictPlan:
    """What one prediction run uses (pinned) and how its parcels are cut into ``parcel_key`` ranges."""

    aoi: str
    model_version: int
    s2_composite_id: int
    s1_composite_id: int | None
    parcels_in_aoi: int
    chunks: tuple[tuple[int, int], ...]

    def as_dict(self) -> dict:
        return {"aoi": self.aoi, "model_version": self.model_version, "s2_composite_id": self.s2_composite_id,
                "s1_composite_id": self.s1_composite_id, "parcels_in_aoi": self.parcels_in_aoi,
                "chunks": [list(c) for c in self.chunks]}

    @classmethod
    def from_dict(cls, data: dict) -> PredictPlan:
        """The plan :meth:`as_dict` wrote (e.g. passed between Airflow tasks as JSON)."""
        try:
            return cls(data["aoi"], data["model_version"], data["s2_composite_id"], data["s1_composite_id"],
                       int(data["parcels_in_aoi"]), tuple((lo, hi) for lo, hi in data["chunks"]))
        except (KeyError, TypeError, ValueError) as e:
            raise BadInputError(f"not a prediction plan (expected the keys of PredictPlan.as_dict): {e!r}") from e

    def chunk_args(self) -> list[dict]:
        """One JSON-able dict per chunk (a mapped task's argument): the pins and the ``first``/``last`` keys."""
        pins = {"aoi": self.aoi, "model_version": self.model_version, "s2_composite_id": self.s2_composite_id,
                "s1_composite_id": self.s1_composite_id}
        return [{**pins, "first": lo, "last": hi} for lo, hi in self.chunks]

    def request_for(self, chunk: tuple[int, int] | list[int], *, run_id: str, **options: Any) -> PredictRequest:
        """The request estimating ``chunk`` (one of :attr:`chunks`) with the planned champion and exactly the
        planned composites (a planned "no S1" stays none); ``options``: the pixel options and ``workdir``."""
        bounds = tuple(chunk)
        if bounds not in self.chunks:
            raise BadInputError(f"{bounds!r} is not a chunk of the plan for AOI {self.aoi} "
                                f"({len(self.chunks)} chunks)")
        return PredictRequest(self.aoi, run_id, self.model_version, CompositePin.of(self.s2_composite_id),
                              CompositePin.exactly(self.s1_composite_id), bounds, **options)  # type: ignore[arg-type]


def _resolve(conn, aoi_name: str, model_version: int | None, s2_pin: CompositePin, s1_pin: CompositePin):
    """The AOI, the champion and the composites a run uses: per sensor the pinned one or the newest, in
    either case of the method the champion was trained on (its lineage's ``s2_method_hash`` and
    ``s1_method_hash``; none for Sentinel-1 when the model has no SAR input); a champion registered
    without them gets the pinned or newest one, with a warning."""
    from soilclay.composites.recipe import method_of
    from soilclay.model import registry

    aoi = get_aoi(conn, aoi_name)
    champion = registry.current_champion(conn)
    if champion is None:
        raise NotReadyError("no champion model yet: run `soilclay model retrain` first")
    if model_version is not None and champion.version != model_version:
        raise ChampionChangedError(f"model version {model_version} was requested (or planned) but the champion "
                                   f"is now version {champion.version}; estimates come from the champion only")
    trained = champion.training_data
    if trained.get("s2_method_hash") is None:  # registered before methods were recorded (or of unknown recipe)
        log.warning("champion model version %s records no composite method: using the pinned or newest composites "
                    "of AOI %s whatever their recipe; retrain (with --force if the inputs are unchanged) to record "
                    "it", champion.version, aoi.name)

    def described(row) -> str:
        return (f"version {row.version} (id {row.composite_id}): "
                f"{method_of(row.recipe, row.sensor) or 'a recipe of unknown method'}")

    def pick(sensor: str, pin: CompositePin):
        key = "s2" if sensor == "sentinel-2" else "s1"
        wanted, about = trained.get(f"{key}_method_hash"), trained.get(f"{key}_method") or "unknown method"
        if wanted is None:  # no record (older champion), or no such input (a model without SAR)
            return composite_rows.pick(conn, aoi.aoi_id, aoi.name, sensor, pin.composite_id)
        trained_on = f"{about} (method {wanted[:8]})"

        def of_method(row) -> bool:
            method = method_of(row.recipe, sensor)
            return method is not None and method.hash == wanted

        if pin.composite_id is not None:
            row = composite_rows.pick(conn, aoi.aoi_id, aoi.name, sensor, pin.composite_id)
            if not of_method(row):
                raise BadInputError(f"{sensor} composite {described(row)} of AOI {aoi.name} is not of the method "
                                    f"champion model version {champion.version} was trained on: {trained_on}; pin "
                                    "a composite of that method, or retrain on this one")
            return row
        row = composite_rows.newest_where(conn, aoi.aoi_id, sensor, of_method)
        if row is None:
            newest = composite_rows.newest(conn, aoi.aoi_id, sensor)
            raise NotReadyError(
                f"AOI {aoi.name} has no {sensor} composite of the method champion model version {champion.version} "
                f"was trained on: {trained_on}; its newest {sensor} composite is "
                f"{'none' if newest is None else described(newest)}. Build one with that recipe "
                "(`soilclay composites build`) or retrain on the new composites")
        return row

    s2 = pick("sentinel-2", s2_pin)
    s1 = None if s1_pin == NONE else pick("sentinel-1", s1_pin)
    if s2 is None:
        raise NotReadyError(f"AOI {aoi.name} has no Sentinel-2 composite yet: run `soilclay composites build`")
    return aoi, champion, s2, s1


def plan_predictions(engine: Engine, *, aoi_name: str, chunk_size: int = 500,
                     model_version: int | None = None) -> PredictPlan:
    """Pin the champion and the newest composites; cut the AOI's parcels into ranges of ``chunk_size``
    (enlarged when that would make more than :data:`MAX_CHUNKS` chunks)."""
    if not _is_int(chunk_size, 1):
        raise BadInputError(f"chunk_size must be an integer >= 1, found {chunk_size!r}")
    with reading(engine, f"planning predictions for AOI {aoi_name}") as conn:
        aoi, champion, s2, s1 = _resolve(conn, aoi_name, model_version, NEWEST, NEWEST)
        total = parcels_repo.count_in_aoi(conn, aoi.aoi_id)
        chunks = parcels_repo.id_chunks(conn, aoi.aoi_id, max(chunk_size, -(-total // MAX_CHUNKS)))
    return PredictPlan(aoi.name, champion.version, s2.composite_id, None if s1 is None else s1.composite_id,
                       total, chunks)


def predict_aoi(engine: Engine, request: PredictRequest, predictor_factory, store=None) -> PredictOutcome:
    """Estimate the parcels of ``request`` not yet estimated by the champion on its composites.

    ``predictor_factory(champion) -> Predictor`` builds the predictor for the champion version (see
    :func:`soilclay.serving.factory.predictor_factory`); ``store`` is where ``gs://`` composites are read
    from. A champion other than ``request.model_version`` raises :class:`ChampionChangedError`.
    """
    if not isinstance(request, PredictRequest):
        raise BadInputError(f"predict_aoi needs a PredictRequest, found {type(request).__name__}")
    started = time.monotonic()
    with reading(engine, f"resolving the model and composites of AOI {request.aoi}") as conn:
        aoi, champion, s2, s1 = _resolve(conn, request.aoi, request.model_version, request.s2, request.s1)
    predictor = predictor_factory(champion)
    try:
        s1_id = s1.composite_id if s1 is not None and "sar" in predictor.inputs else None
        with reading(engine, f"finding the parcels of AOI {aoi.name} to estimate") as conn:
            total = parcels_repo.count_in_aoi(conn, aoi.aoi_id, request.parcel_range)
            parcels = parcels_repo.parcels_to_estimate(conn, aoi.aoi_id, model_version=champion.version,
                                                       s2_composite_id=s2.composite_id, s1_composite_id=s1_id,
                                                       parcel_range=request.parcel_range)
        if parcels.empty:
            return PredictOutcome(aoi.name, champion.version, s2.composite_id, s1_id, total, 0, 0, {}, 0,
                                  time.monotonic() - started)
        # Pixels and estimates are labelled by the parcel key (as text); each row names the geometry it used.
        geometries = {str(k): (int(k), h) for k, h in zip(parcels["parcel_key"], parcels["geom_hash"], strict=True)}
        parcels = parcels.assign(parcel_id=list(geometries))[["parcel_id", "geometry"]]
        with tempfile.TemporaryDirectory(prefix="soilclay-predict-", dir=request.workdir) as tmp:
            s2_path = local_path(s2.uri, store, Path(tmp))
            s1_path = local_path(s1.uri, store, Path(tmp)) if s1_id is not None else None
            labels = {s2_path: f"Sentinel-2 composite version {s2.version} (id {s2.composite_id}, {s2.uri}) at"}
            if s1_path is not None:
                labels[s1_path] = f"Sentinel-1 composite version {s1.version} (id {s1.composite_id}, {s1.uri}) at"
            pixels = parcel_pixels(parcels, s2_path, s1_path, predictor.inputs, labels=labels,
                                   inward_buffer_m=request.inward_buffer_m, max_pixels=request.max_pixels)
        out = predictor.predict(pixels.arrays)
        estimates = aggregate(pixels.parcel_ids, pixels.parcel, np.asarray(out["clay"], float),
                              np.asarray(out["clay_lower"], float), np.asarray(out["clay_upper"], float),
                              np.asarray(out["in_domain"], bool), pixels.total_pixels, pixels.usable_pixels,
                              min_pixels=request.min_pixels)
        written = write_estimates(engine, estimates, geometries, model_version=champion.version,
                                  s2_composite_id=s2.composite_id, s1_composite_id=s1_id, run_id=request.run_id)
    finally:
        predictor.close()
    flagged: dict[str, int] = {}
    for flags in estimates.flags:
        for f in flags:
            flagged[f] = flagged.get(f, 0) + 1
    return PredictOutcome(aoi.name, champion.version, s2.composite_id, s1_id, total, len(parcels), written,
                          flagged, int(len(pixels.parcel)), time.monotonic() - started)
