"""Reducers (:class:`Reducer` and its constructors) and the reductions: per pixel across an image's
bands (Image.reduce) and over a collection (ImageCollection.reduce, sum, count)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tests.earthengine.evaluator.model import FLOAT64, INT, Band, Img, Refused, Unsupported, _collection, _img, _union

if TYPE_CHECKING:
    from tests.earthengine.evaluator.core import Evaluator

# --------------------------------------------------------------------------- reducers


@dataclass(frozen=True)
class Reducer:
    kind: str  # median, percentile, mean, min, sum, count
    percentiles: tuple[float, ...] = ()
    output_names: tuple[str, ...] = ()
    max_raw: int | None = None

    @property
    def outputs(self) -> tuple[str, ...]:
        if self.kind == "percentile":
            return self.output_names or tuple(f"p{_fmt(p)}" for p in self.percentiles)
        return (self.kind,)


def _fmt(p: float) -> str:
    return str(int(p)) if float(p) == int(p) else str(p)


def reducer_median(ev, maxBuckets=None, minBucketWidth=None, maxRaw=None):
    """ee.Reducer.median: "For small numbers of inputs (up to maxRaw) the median will be computed
    directly; for larger numbers of inputs the median will be derived from a histogram"
    (https://developers.google.com/earth-engine/apidocs/ee-reducer-median). Output name ``median``.
    Evaluated with numpy's linear interpolation between closest ranks (Earth Engine does not document
    its interpolation; see soilclay.composites.parity), and REFUSED without an explicit ``maxRaw`` or
    where a pixel has more observations than it: the histogram estimate is not modelled."""
    return Reducer("median", max_raw=maxRaw)


def reducer_percentile(ev, percentiles, outputNames=None, maxBuckets=None, minBucketWidth=None, maxRaw=None):
    """ee.Reducer.percentile: like median (raw values up to ``maxRaw``, then a histogram); outputs named
    ``pNN`` unless ``outputNames`` (https://developers.google.com/earth-engine/apidocs/ee-reducer-percentile).
    Same numpy interpolation and same refusal as :func:`reducer_median`."""
    return Reducer("percentile", tuple(float(p) for p in percentiles), tuple(outputNames or ()), maxRaw)


def reducer_mean(ev):
    """ee.Reducer.mean: the unweighted arithmetic mean; output name ``mean``
    (https://developers.google.com/earth-engine/apidocs/ee-reducer-mean). Double output."""
    return Reducer("mean")


def reducer_min(ev):
    """ee.Reducer.min: the smallest input; output name ``min``; the input's type
    (https://developers.google.com/earth-engine/apidocs/ee-reducer-min)."""
    return Reducer("min")


def _reduce_stack(reducer: Reducer, values: np.ndarray, valid: np.ndarray, ptype: str,
                  where: str) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Reduce a (T, H, W) stack over its first axis, ignoring invalid observations; a pixel without
    any valid observation is masked. Returns (values, mask, type) per reducer output."""
    count = valid.sum(axis=0)
    has = count > 0
    data = np.where(valid, values, np.nan)
    out_mask = has.astype(np.float64)
    with np.errstate(all="ignore"):
        if reducer.kind == "count":
            return [(count.astype(np.float64), out_mask, INT)]
        if reducer.kind == "sum":
            return [(np.where(has, np.nansum(data, axis=0), 0.0), out_mask, ptype)]
        if reducer.kind == "mean":
            return [(np.where(has, np.nansum(data, axis=0) / np.maximum(count, 1), 0.0), out_mask, FLOAT64)]
        if reducer.kind == "min":
            return [(np.where(has, np.nanmin(np.where(valid, values, np.inf), axis=0), 0.0), out_mask, ptype)]
        if reducer.kind in ("median", "percentile"):
            if reducer.max_raw is None:
                raise Refused(f"{where}: Reducer.{reducer.kind} without an explicit maxRaw: Earth Engine's "
                              "default may estimate it from a histogram, which is not modelled")
            largest = int(count.max()) if count.size else 0
            if largest > reducer.max_raw:
                raise Refused(f"{where}: a pixel has {largest} observations, above maxRaw {reducer.max_raw}: "
                              "Earth Engine estimates the statistic from a histogram there (not modelled)")
            qs = [50.0] if reducer.kind == "median" else list(reducer.percentiles)
            results = []
            for q in qs:
                results.append((np.where(has, _nanpercentile(data, q), 0.0), out_mask, FLOAT64))
            return results
    raise Unsupported(f"{where}: reducer {reducer.kind}")


def _nanpercentile(data: np.ndarray, q: float) -> np.ndarray:
    """``np.nanpercentile(data, q, axis=0)`` (linear interpolation), computed per group of pixels with
    the same number of observations with ``np.percentile`` on their sorted valid values: the same
    numbers, without ``nanpercentile``'s per-pixel loop."""
    t = data.shape[0]
    flat = np.sort(data.reshape(t, -1), axis=0)  # NaN sort last
    counts = np.count_nonzero(~np.isnan(flat), axis=0)
    out = np.zeros(flat.shape[1])
    for c in np.unique(counts):
        if c == 0:
            continue
        cols = counts == c
        out[cols] = np.percentile(flat[:c, cols], q, axis=0, method="linear")
    return out.reshape(data.shape[1:])


def image_reduce(ev, image, reducer):
    """ee.Image.reduce: the reducer applied per pixel across the image's bands; one band per reducer
    output, named for the output (``min``) (https://developers.google.com/earth-engine/apidocs/ee-image-reduce;
    guide: https://developers.google.com/earth-engine/guides/reducers_image). Masked bands are not
    inputs; a pixel where every band is masked is masked."""
    img = _img(image, ev)
    bands = list(img.bands.values())
    values = np.stack([b.values for b in bands])
    valid = np.stack([b.mask > 0 for b in bands])
    ptype = _union(*(b.ptype for b in bands))
    results = _reduce_stack(reducer, values, valid, ptype, "Image.reduce")
    return Img({name: Band(v, m, t) for name, (v, m, t) in zip(reducer.outputs, results, strict=True)},
               dict(img.properties))


def _collection_reduce(ev: Evaluator, collection: list[Img], reducer: Reducer, where: str,
                       suffix: bool) -> Img:
    if not collection:
        return Img({})
    names = collection[0].names
    for image in collection:
        if image.names != names:
            raise ValueError(f"{where}: images with bands {image.names} and {names}")
    out = {}
    for name in names:
        values = np.stack([image.bands[name].values for image in collection])
        valid = np.stack([image.bands[name].mask > 0 for image in collection])
        ptype = _union(*(image.bands[name].ptype for image in collection))
        results = _reduce_stack(reducer, values, valid, ptype, f"{where} of band {name}")
        for output, (v, m, t) in zip(reducer.outputs, results, strict=True):
            out[f"{name}_{output}" if suffix else name] = Band(v, m, t)
    return Img(out)


def image_collection_reduce(ev, collection, reducer, parallelScale=1):
    """ee.ImageCollection.reduce: the reducer applied per pixel over the collection, separately per
    band (single-input reducers); "reducers with a single input will prefix the output name with the
    input band name (e.g., '10_mean', '20_mean')" (https://developers.google.com/earth-engine/apidocs/ee-imagecollection-reduce;
    guide: https://developers.google.com/earth-engine/guides/reducers_image_collection). Masked pixels
    are not inputs; a pixel without an unmasked observation is masked. Bands are matched by name
    (every image must have the same bands)."""
    return _collection_reduce(ev, _collection(collection), reducer, "ImageCollection.reduce", suffix=True)


def reduce_sum(ev, collection):
    """ee.ImageCollection.sum (serialised ``reduce.sum``): the per-pixel sum of unmasked values, band by
    band, names kept ("the resultant band names will not have the name of the reducer appended",
    https://developers.google.com/earth-engine/guides/reducers_image_collection;
    https://developers.google.com/earth-engine/apidocs/ee-imagecollection-sum). A pixel without an
    unmasked observation is masked. Integer inputs give an integer sum."""
    return _collection_reduce(ev, _collection(collection), Reducer("sum"), "ImageCollection.sum", suffix=False)


def reduce_count(ev, collection):
    """ee.ImageCollection.count (serialised ``reduce.count``): the number of unmasked observations per
    pixel and band, names kept (https://developers.google.com/earth-engine/apidocs/ee-imagecollection-count);
    masked where there is none (like every reducer without input). Integer output."""
    return _collection_reduce(ev, _collection(collection), Reducer("count"), "ImageCollection.count", suffix=False)
