"""Collections and their metadata: loads from the synthetic catalogue, filters (fields, dates,
footprints), map, joins, Element.get, dates and the geometry constructors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from tests.earthengine.evaluator.model import Img, Unsupported, _collection

# --------------------------------------------------------------------------- collections, filters, joins


def image_collection_load(ev, id, version=None):
    """ee.ImageCollection(id): the catalogue's images of asset ``id`` (an unknown id fails, as on the
    server)."""
    if id not in ev.catalogue:
        raise KeyError(f"ImageCollection.load: no asset {id!r} in the synthetic catalogue")
    images = [s.to_img() for s in ev.catalogue[id]]
    ev.loaded.extend(str(i.properties.get("system:index")) for i in images)
    return images


def image_load(ev, id, version=None):
    """ee.Image(id) of one catalogue image, ``<collection asset>/<system:index>`` (an unknown id fails)."""
    asset, _, index = str(id).rpartition("/")
    for image in ev.catalogue.get(asset, ()):
        if str(image.properties.get("system:index")) == index:
            ev.loaded.append(index)
            return image.to_img()
    raise KeyError(f"Image.load: no image {id!r} in the synthetic catalogue")


def collection_filter(ev, collection, filter):
    """ee.Collection.filter: the elements the filter accepts, in order."""
    return [image for image in _collection(collection) if filter(image.properties, None)]


def collection_map(ev, collection, baseAlgorithm, dropNulls=False):
    """ee.Collection.map: the function applied to every element (a function definition with its
    argument names, evaluated per element); null results are dropped when ``dropNulls``."""
    out = []
    for image in _collection(collection):
        result = baseAlgorithm(image)
        if result is None and dropNulls:
            continue
        if not isinstance(result, Img):
            raise Unsupported(f"Collection.map: the function returned {type(result).__name__}, not an image")
        out.append(result)
    return out


def element_get(ev, object, property):
    """ee.Element.get (``image.get(name)``): the property's value, None if absent."""
    if not isinstance(object, Img):
        raise Unsupported(f"Element.get on {type(object).__name__}")
    return object.properties.get(property)


_MISSING = object()


def _prop(props: Mapping | None, name: str) -> Any:
    return _MISSING if props is None else props.get(name, _MISSING)


def _field_filter(name: str, test: Callable[[Any, Any], bool], leftField=None, rightValue=None,
                  rightField=None, leftValue=None):
    """Metadata filters compare ``leftField``/``leftValue`` with ``rightValue``/``rightField``; in a join
    condition the left field is the primary's and the right field the secondary's. A missing property
    does not match (https://developers.google.com/earth-engine/apidocs/ee-filter-eq)."""
    def accept(left: Mapping, right: Mapping | None) -> bool:
        a = leftValue if leftField is None else _prop(left, leftField)
        if rightField is not None:
            b = _prop(right if right is not None else left, rightField)
        else:
            b = rightValue
        if a is _MISSING or b is _MISSING:
            return False
        return bool(test(a, b))
    accept.__name__ = name
    return accept


def filter_equals(ev, **kw):
    """ee.Filter.equals (ee.Filter.eq): left == right."""
    return _field_filter("equals", lambda a, b: a == b, **kw)


def filter_greater_than(ev, **kw):
    """ee.Filter.greaterThan (ee.Filter.gt): left > right."""
    return _field_filter("greaterThan", lambda a, b: a > b, **kw)


def filter_less_than(ev, **kw):
    """ee.Filter.lessThan (ee.Filter.lt): left < right."""
    return _field_filter("lessThan", lambda a, b: a < b, **kw)


def filter_list_contains(ev, **kw):
    """ee.Filter.listContains: "the left operand, a list, contains the right operand"
    (https://developers.google.com/earth-engine/apidocs/ee-filter-listcontains). Serialised both ways:
    ``ee.Filter.inList(field, list)`` is ``listContains(leftValue=list, rightField=field)`` (the image's
    property is in the list); ``ee.Filter.listContains(field, value)`` is ``(leftField, rightValue)``
    (the image's list property holds the value)."""
    return _field_filter("listContains", lambda a, b: isinstance(a, (list, tuple)) and b in a, **kw)


def filter_and(ev, filters):
    """ee.Filter.and: every filter accepts."""
    return lambda left, right: all(f(left, right) for f in filters)


def filter_not(ev, filter):
    """ee.Filter.not: the filter rejects."""
    return lambda left, right: not filter(left, right)


def _ms(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000.0


def date(ev, value, timeZone=None):
    """ee.Date: milliseconds since the epoch (a number) or an ISO date read as UTC."""
    if timeZone not in (None, "UTC"):
        raise Unsupported(f"Date in time zone {timeZone}")
    return _ms(value)


def date_range(ev, start, end=None, timeZone=None):
    """ee.DateRange: [start, end), ISO dates read as UTC (https://developers.google.com/earth-engine/apidocs/ee-daterange)."""
    if timeZone not in (None, "UTC"):
        raise Unsupported(f"DateRange in time zone {timeZone}")
    return (_ms(start), _ms(end) if end is not None else _ms(start) + 86_400_000)


def filter_date_range_contains(ev, leftValue=None, rightField=None, leftField=None, rightValue=None):
    """ee.Filter.dateRangeContains (``filterDate``): the date range holds the image's
    ``system:time_start`` (start inclusive, end exclusive) (https://developers.google.com/earth-engine/apidocs/ee-imagecollection-filterdate)."""
    if leftValue is None or rightField is None:
        raise Unsupported("Filter.dateRangeContains other than (leftValue=DateRange, rightField)")
    start, end = leftValue

    def accept(left, right):
        t = _prop(left, rightField)
        return t is not _MISSING and start <= float(t) < end
    return accept


def projection(ev, crs, transform=None, transformWkt=None):
    return {"crs": crs}


def polygon(ev, coordinates, crs=None, geodesic=None, maxError=None, evenOdd=None):
    """A polygon of the AOI (only its footprint test is modelled), as a shapely geometry in its CRS."""
    from shapely.geometry import Polygon

    if crs not in (None, {"crs": "EPSG:4326"}):
        raise Unsupported(f"GeometryConstructors.Polygon in {crs}")
    rings = coordinates
    return Polygon(rings[0], rings[1:])


def feature(ev, geometry, metadata=None):
    return {"geometry": geometry, "properties": metadata or {}}


def filter_intersects(ev, leftField=None, rightValue=None, maxError=None, rightField=None, leftValue=None):
    """ee.Filter.intersects (``filterBounds``): the image's footprint intersects the region. A synthetic
    image may carry ``system:footprint`` (a shapely geometry in EPSG:4326); one without is taken to
    intersect (the harness's scenes are all over the grid)."""
    if leftField != ".all" or rightValue is None:
        raise Unsupported("Filter.intersects other than (leftField='.all', rightValue=geometry)")
    region = rightValue["geometry"] if isinstance(rightValue, dict) else rightValue

    def accept(left, right):
        footprint = _prop(left, "system:footprint")
        return footprint is _MISSING or bool(footprint.intersects(region))
    return accept


def join_save_first(ev, matchKey, ordering=None, ascending=True, measureKey=None, outer=False):
    """ee.Join.saveFirst: each primary element gets the first matching secondary element as property
    ``matchKey``; primaries without a match are dropped unless ``outer``
    (https://developers.google.com/earth-engine/apidocs/ee-join-savefirst). Only the collection order
    is modelled (no ``ordering``)."""
    if ordering is not None or measureKey is not None:
        raise Unsupported("Join.saveFirst with ordering or measureKey")
    return ("saveFirst", matchKey, bool(outer))


def join_apply(ev, join, primary, secondary, condition):
    """ee.Join.apply: the join of ``primary`` and ``secondary`` on ``condition`` (a filter whose left
    field is the primary's, right field the secondary's)."""
    kind, key, outer = join
    out = []
    for p in _collection(primary):
        match = next((s for s in _collection(secondary) if condition(p.properties, s.properties)), None)
        if match is None and not outer:
            continue
        props = dict(p.properties)
        if match is not None:
            props[key] = match
        out.append(Img(p.bands, props))
    return out
