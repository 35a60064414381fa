"""Per-image algorithms: structure (constant, select, rename, addBands, toFloat, masks, remap) and
per-pixel maths (arithmetic, comparisons, and, exp, log10, normalizedDifference, focalMean with its
kernel)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from tests.earthengine.evaluator.model import (
    FLOAT32,
    FLOAT64,
    INT,
    Band,
    Img,
    Unsupported,
    _float_of,
    _img,
    _union,
)

if TYPE_CHECKING:
    from tests.earthengine.evaluator.core import Evaluator

# --------------------------------------------------------------------------- images: structure


def image_constant(ev: Evaluator, value: Any) -> Img:
    """ee.Image.constant: a single band named ``constant``, valid everywhere; an integer gives an
    integer image, a float a double one (https://developers.google.com/earth-engine/apidocs/ee-image-constant)."""
    return ev.constant(value)


def image_select(ev: Evaluator, input: Img, bandSelectors: list, newNames: list | None = None) -> Img:
    """ee.Image.select: the named bands, in the order asked, optionally renamed; exact names only
    (Earth Engine also accepts regular expressions and indices: not modelled). A missing band fails,
    as on the server (https://developers.google.com/earth-engine/apidocs/ee-image-select)."""
    image = _img(input, ev)
    selectors = bandSelectors if isinstance(bandSelectors, list) else [bandSelectors]
    out = {}
    for selector in selectors:
        if not isinstance(selector, str):
            raise Unsupported(f"Image.select by {selector!r} (only band names are modelled)")
        if selector not in image.bands:
            raise KeyError(f"Image.select: band {selector!r} not in {image.names}")
        out[selector] = image.bands[selector]
    if newNames is not None:
        if len(newNames) != len(out):
            raise ValueError(f"Image.select: {len(out)} bands, {len(newNames)} new names")
        out = dict(zip(newNames, out.values(), strict=True))
    return Img(out, dict(image.properties))


def image_rename(ev: Evaluator, input: Img, names: list) -> Img:
    """ee.Image.rename: new names for all bands, in order; the count must match
    (https://developers.google.com/earth-engine/apidocs/ee-image-rename)."""
    image = _img(input, ev)
    names = names if isinstance(names, list) else [names]
    if len(names) != len(image.bands):
        raise ValueError(f"Image.rename: {len(image.bands)} bands {image.names}, {len(names)} names {names}")
    return Img(dict(zip(names, image.bands.values(), strict=True)), dict(image.properties))


def image_add_bands(ev: Evaluator, dstImg: Img, srcImg: Img, names: list | None = None,
                    overwrite: bool = False) -> Img:
    """ee.Image.addBands (and ee.Image.cat, which serialises as a chain of it): ``srcImg``'s bands (or
    those in ``names``) after ``dstImg``'s; a band named like one of ``dstImg`` replaces it if
    ``overwrite``, "otherwise the new band will be renamed with a numerical suffix (foo to foo_1 unless
    foo_1 exists, then foo_2 ...)"; metadata from ``dstImg``
    (https://developers.google.com/earth-engine/apidocs/ee-image-addbands)."""
    dst, src = _img(dstImg, ev), _img(srcImg, ev)
    bands = dict(dst.bands)
    for name, band in src.bands.items():
        if names is not None and name not in names:
            continue
        target = name
        if name in bands and not overwrite:
            k = 1
            while f"{name}_{k}" in bands:
                k += 1
            target = f"{name}_{k}"
        bands[target] = band
    return Img(bands, dict(dst.properties))


def image_to_float(ev: Evaluator, value: Img) -> Img:
    """ee.Image.toFloat: every band cast to 32-bit float (values rounded to float32)
    (https://developers.google.com/earth-engine/apidocs/ee-image-tofloat)."""
    image = _img(value, ev)
    return Img({n: Band(b.values, b.mask, FLOAT32) for n, b in image.bands.items()}, dict(image.properties))


def image_mask(ev: Evaluator, image: Img, mask: Img | None = None) -> Img:
    """ee.Image.mask() (the getter): each band's mask as a float image, itself valid everywhere (0 where
    the band is masked) (https://developers.google.com/earth-engine/apidocs/ee-image-mask). Setting a
    mask with it is not modelled (the composites use updateMask)."""
    if mask is not None:
        raise Unsupported("Image.mask with a mask argument (setting the mask)")
    img = _img(image, ev)
    return Img({n: Band(b.mask.copy(), np.ones(ev.shape), FLOAT32) for n, b in img.bands.items()},
               dict(img.properties))


def image_update_mask(ev: Evaluator, image: Img, mask: Img) -> Img:
    """ee.Image.updateMask: the new mask (a float in [0, 1], 0 invalid) applies where the existing mask
    is not zero; a one-band mask applies to every band, otherwise band by band
    (https://developers.google.com/earth-engine/apidocs/ee-image-updatemask). Modelled as the product
    of the existing mask and the new one, where the new mask image's own masked pixels count as 0."""
    img, m = _img(image, ev), _img(mask, ev)
    masks = list(m.bands.values())
    if len(masks) not in (1, len(img.bands)):
        raise ValueError(f"Image.updateMask: {len(img.bands)} bands, mask of {len(masks)}")
    out = {}
    for i, (name, band) in enumerate(img.bands.items()):
        mb = masks[0] if len(masks) == 1 else masks[i]
        new = np.where(mb.mask > 0, np.clip(mb.values, 0.0, 1.0), 0.0)
        out[name] = Band(band.values, band.mask * new, band.ptype)
    return Img(out, dict(img.properties))


def image_unmask(ev: Evaluator, input: Img, value: Any = None, sameFootprint: bool = True) -> Img:
    """ee.Image.unmask: where the input's mask is zero, the value and mask of ``value`` (default: a
    constant 0 valid everywhere) (https://developers.google.com/earth-engine/apidocs/ee-image-unmask).
    ``sameFootprint`` keeps the input's footprint; the images unmasked here are collection reductions,
    which have none, and this evaluator has no footprints. The type is the union of both types."""
    img = _img(input, ev)
    fill = ev.constant(0) if value is None else _img(value, ev)
    fills = list(fill.bands.values())
    if len(fills) not in (1, len(img.bands)):
        raise ValueError(f"Image.unmask: {len(img.bands)} bands, value of {len(fills)}")
    out = {}
    for i, (name, band) in enumerate(img.bands.items()):
        fb = fills[0] if len(fills) == 1 else fills[i]
        hole = band.mask == 0
        out[name] = Band(np.where(hole, fb.values, band.values), np.where(hole, fb.mask, band.mask),
                         _union(band.ptype, fb.ptype))
    return Img(out, dict(img.properties))


def image_remap(ev: Evaluator, image: Img, **kw: Any) -> Img:
    """ee.Image.remap: values listed in ``from`` become the matching ``to``; any other value becomes
    ``defaultValue`` if given, or is masked if not; the band remapped is ``bandName`` or the first; the
    output band is named ``remapped`` and keeps the properties
    (https://developers.google.com/earth-engine/apidocs/ee-image-remap). Masked input pixels stay
    masked (a value is only read where it is valid)."""
    unknown = sorted(set(kw) - {"from", "to", "defaultValue", "bandName"})
    if unknown or "from" not in kw or "to" not in kw:
        raise Unsupported(f"Image.remap: arguments {sorted(kw)} not modelled")
    img = _img(image, ev)
    src, dst = kw["from"], kw["to"]
    default, band_name = kw.get("defaultValue"), kw.get("bandName")
    if len(src) != len(dst):
        raise ValueError("Image.remap: from and to differ in length")
    band = img.bands[band_name] if band_name else next(iter(img.bands.values()))
    out = np.full(ev.shape, np.nan if default is None else float(default))
    matched = np.zeros(ev.shape, bool)
    for a, b in zip(src, dst, strict=True):
        hit = (band.values == a) & ~matched
        out[hit] = b
        matched |= hit
    mask = band.mask.copy()
    if default is None:
        mask = np.where(matched, mask, 0.0)
    out = np.where(np.isnan(out), 0.0, out)
    numbers = list(dst) + ([] if default is None else [default])
    ptype = INT if all(isinstance(v, int) and not isinstance(v, bool) for v in numbers) else FLOAT64
    return Img({"remapped": Band(out, mask, ptype)}, dict(img.properties))


# --------------------------------------------------------------------------- images: per-pixel maths


def _pairs(ev: Evaluator, image1: Any, image2: Any, name: str) -> tuple[list[tuple[str, Band, Band]], dict]:
    """Band matching of binary operations (documented with each, e.g.
    https://developers.google.com/earth-engine/apidocs/ee-image-divide): a one-band image is used
    against every band of the other; images with as many bands are used pairwise in order; the output
    bands are named for the longer input, or image1's if equally long. Properties: image1's."""
    a, b = _img(image1, ev), _img(image2, ev)
    na, nb = len(a.bands), len(b.bands)
    la, lb = list(a.bands.items()), list(b.bands.items())
    if na == nb:
        pairs = [(n, x, y) for (n, x), (_, y) in zip(la, lb, strict=True)]
    elif nb == 1:
        pairs = [(n, x, lb[0][1]) for n, x in la]
    elif na == 1:
        pairs = [(n, la[0][1], y) for n, y in lb]
    else:
        raise ValueError(f"{name}: cannot match {na} bands with {nb}")
    return pairs, dict(a.properties)


def _binary(ev: Evaluator, image1: Any, image2: Any, name: str,
            op: Callable[[np.ndarray, np.ndarray, str], np.ndarray], ptype: Callable[[str, str], str]) -> Img:
    """A pixel of a binary operation is masked where either input is masked (the output mask is the
    smaller of the two masks)."""
    pairs, props = _pairs(ev, image1, image2, name)
    out = {}
    for band_name, x, y in pairs:
        t = ptype(x.ptype, y.ptype)
        with np.errstate(all="ignore"):
            values = op(x.values, y.values, t)
        out[band_name] = Band(values, np.minimum(x.mask, y.mask), t)
    return Img(out, props)


def image_add(ev, image1, image2):
    """ee.Image.add: per matched band, type = union of the input types
    (https://developers.google.com/earth-engine/apidocs/ee-image-add)."""
    return _binary(ev, image1, image2, "Image.add", lambda a, b, t: a + b, _union)


def image_subtract(ev, image1, image2):
    """ee.Image.subtract: per matched band, type = union of the input types
    (https://developers.google.com/earth-engine/apidocs/ee-image-subtract)."""
    return _binary(ev, image1, image2, "Image.subtract", lambda a, b, t: a - b, _union)


def image_multiply(ev, image1, image2):
    """ee.Image.multiply: per matched band, type = union of the input types
    (https://developers.google.com/earth-engine/apidocs/ee-image-multiply)."""
    return _binary(ev, image1, image2, "Image.multiply", lambda a, b, t: a * b, _union)


def _divide(a: np.ndarray, b: np.ndarray, ptype: str) -> np.ndarray:
    zero = b == 0
    quotient = np.where(zero, 0.0, a / np.where(zero, 1.0, b))
    return np.trunc(quotient) if ptype == INT else quotient


def image_divide(ev, image1, image2):
    """ee.Image.divide: "Divides the first value by the second, returning 0 for division by 0 ... The
    type of the output pixels is the union of the input types"
    (https://developers.google.com/earth-engine/apidocs/ee-image-divide). Two integer images therefore
    give an integer quotient: modelled as truncation toward zero (integer division as Java and C do it;
    the counts divided here are never negative, where truncation and floor agree)."""
    return _binary(ev, image1, image2, "Image.divide", _divide, _union)


def _comparison(symbol: str, op: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    def rule(ev, image1, image2):
        return _binary(ev, image1, image2, f"Image.{symbol}", lambda a, b, t: op(a, b).astype(np.float64),
                       lambda s, u: INT)
    rule.__doc__ = (f"ee.Image.{symbol}: 1 where the comparison holds, else 0, per matched band; "
                    "\"The type of the output pixels is boolean\" (an integer 0/1) "
                    f"(https://developers.google.com/earth-engine/apidocs/ee-image-{symbol.lower()}).")
    return rule


def image_and(ev, image1, image2):
    """ee.Image.and: "Returns 1 if and only if both values are non-zero", per matched band; boolean
    (integer 0/1) output (https://developers.google.com/earth-engine/apidocs/ee-image-and)."""
    return _binary(ev, image1, image2, "Image.and",
                   lambda a, b, t: ((a != 0) & (b != 0)).astype(np.float64), lambda s, u: INT)


def _unary(ev: Evaluator, value: Any, op: Callable[[np.ndarray], np.ndarray]) -> Img:
    img = _img(value, ev)
    out = {}
    for name, band in img.bands.items():
        with np.errstate(all="ignore"):
            values = op(band.values)
        bad = ~np.isfinite(values)
        out[name] = Band(np.where(bad, 0.0, values), np.where(bad, 0.0, band.mask), _float_of(band.ptype))
    return Img(out, dict(img.properties))


def image_exp(ev, value):
    """ee.Image.exp: e^x per band (https://developers.google.com/earth-engine/apidocs/ee-image-exp).
    Chosen: a float input keeps its precision, an integer one becomes double; a non-finite result is
    masked."""
    return _unary(ev, value, np.exp)


def image_log10(ev, value):
    """ee.Image.log10: base-10 logarithm per band
    (https://developers.google.com/earth-engine/apidocs/ee-image-log10). Chosen: float precision kept,
    and log10 of 0 or a negative value (not finite) masked."""
    return _unary(ev, value, np.log10)


def image_normalized_difference(ev, input, bandNames=None):
    """ee.Image.normalizedDifference: (first - second) / (first + second), one band named ``nd``, input
    properties not retained, and "a negative pixel value in either input band will cause the output
    pixel to be masked" (https://developers.google.com/earth-engine/apidocs/ee-image-normalizeddifference).
    Masked where either band is masked. The documentation is silent on 0/0 (both bands 0): chosen
    0, as Image.divide returns for a division by 0 (the local backend gives NaN there, and so does not
    call such a pixel bare: in Earth Engine's harmonised Sentinel-2, DN 0 is nodata and masked, so the
    case does not arise on real inputs). Output type: float32 (chosen; undocumented)."""
    img = _img(input, ev)
    if bandNames is None:
        first, second = list(img.bands.values())[:2]
    else:
        first, second = img.bands[bandNames[0]], img.bands[bandNames[1]]
    a, b = first.values, second.values
    total = a + b
    with np.errstate(all="ignore"):
        nd = np.where(total == 0, 0.0, (a - b) / np.where(total == 0, 1.0, total))
    mask = np.minimum(first.mask, second.mask) * ((a >= 0) & (b >= 0))
    return Img({"nd": Band(nd, mask, FLOAT32)})


def kernel_square(ev, radius, units="pixels", normalize=True, magnitude=1):
    """ee.Kernel.square: a (2 radius + 1)^2 square; only ``units='pixels'`` and ``magnitude`` 1 are
    modelled (https://developers.google.com/earth-engine/apidocs/ee-kernel-square)."""
    if units != "pixels" or magnitude != 1 or float(radius) != int(radius):
        raise Unsupported(f"Kernel.square(radius={radius}, units={units}, magnitude={magnitude})")
    return ("square", int(radius))


def image_focal_mean(ev, image, radius=1.5, kernelType="circle", units="pixels", iterations=1, kernel=None):
    """ee.Image.focalMean with a ``Kernel.square(r, 'pixels')``: the mean of the unmasked pixels of the
    (2r+1)^2 window (https://developers.google.com/earth-engine/apidocs/ee-image-focalmean; masked
    pixels are not inputs of a reducer). Band names are kept. The output mask is not documented for
    focalMean; ee.Image.reduceNeighborhood, its general form, masks an output pixel "if the
    corresponding input pixel is masked" by default (skipMasked: true,
    https://developers.google.com/earth-engine/apidocs/ee-image-reduceneighborhood): chosen that rule,
    which is the local backend's too (NaN where the centre is invalid). Pixels beyond the grid are
    treated as masked (the synthetic scenes end there). ``Evaluator(focal_skip_masked=False)`` models the
    other reading (a masked centre gets the mean of its unmasked neighbours), to measure what it would
    change."""
    if kernel is None or iterations != 1:
        raise Unsupported("Image.focalMean without an explicit Kernel.square, or with iterations != 1")
    _, r = kernel
    img = _img(image, ev)
    out = {}
    for name, band in img.bands.items():
        valid = band.mask > 0
        values = np.where(valid, band.values, 0.0)
        num, den = _box_sum(values, r), _box_sum(valid.astype(np.float64), r)
        with np.errstate(all="ignore"):
            mean = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        keep = (valid & (den > 0)) if ev.focal_skip_masked else (den > 0)
        out[name] = Band(mean, np.where(keep, np.where(valid, band.mask, 1.0), 0.0), _float_of(band.ptype))
    return Img(out, dict(img.properties))


def _box_sum(a: np.ndarray, r: int) -> np.ndarray:
    padded = np.pad(a, r)
    h, w = a.shape
    out = np.zeros_like(a)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out += padded[dy:dy + h, dx:dx + w]
    return out
