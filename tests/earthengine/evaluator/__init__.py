"""A small numpy interpreter of serialised Earth Engine expressions: exactly the algorithms soilclay's
composite expressions (:mod:`soilclay.composites.earthengine`) use, evaluated per pixel on synthetic
scenes, so that the Earth Engine expression can be compared with the local backend offline
(``tests/composites/test_parity.py``). Anything else fails loudly, naming the function.

Model: an image is an ordered set of named bands; a band has values, a pixel type (``int``,
``float32`` or ``float64``: the distinctions Earth Engine's type rules make that matter here) and a
mask in 0..1 (masked where 0). All images share one pixel grid: there is no reprojection, no
footprint and no scale; the harness tests the per-pixel logic (extent and projection are checked
structurally by ``tests/composites/test_earthengine.py``).

Each rule below says what Earth Engine documents and where it was checked; where the documentation is
silent the rule says what was chosen and why. The documentation pages are under
https://developers.google.com/earth-engine/apidocs/ (``ee-image-divide`` etc., named per rule).

Input: a catalogue ``{asset_id: [SyntheticImage, ...]}``. Output of :func:`evaluate`: the evaluated
object (an :class:`Img` for an image expression); :func:`as_arrays` turns an image into
``{band: float64 array, NaN where masked}``.

Layout: :mod:`.model` (pixel types, bands, images, type rules, the failures), :mod:`.core` (the
:class:`Evaluator`, :func:`evaluate`, :func:`evaluator_for`), :mod:`.images` (per-image algorithms),
:mod:`.catalogue` (loads, filters, map, joins, dates, geometry), :mod:`.reducers` (reducers and
reductions) and :mod:`.table` (the ``ALGORITHMS`` table naming every modelled algorithm).
"""

from tests.earthengine.evaluator.core import Evaluator, evaluate, evaluator_for
from tests.earthengine.evaluator.model import (
    FLOAT32,
    FLOAT64,
    INT,
    Band,
    Img,
    Refused,
    SyntheticImage,
    Unsupported,
    as_arrays,
    pixel_types,
)
from tests.earthengine.evaluator.reducers import _nanpercentile as _nanpercentile  # for test_evaluator.py
from tests.earthengine.evaluator.table import ALGORITHMS

__all__ = ["ALGORITHMS", "Band", "Evaluator", "FLOAT32", "FLOAT64", "INT", "Img", "Refused", "SyntheticImage",
           "Unsupported", "as_arrays", "evaluate", "evaluator_for", "pixel_types"]

