"""What every predictor shares: the :class:`Predictor` protocol, input and output checks against
:mod:`soilclay.contract`, batching, and :class:`BatchedPredictor`, the batch loop both predictors run."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from soilclay.contract import INPUT_DTYPE, INPUT_FEATURES, OUTPUT_DTYPES, OUTPUTS, check_inputs
from soilclay.errors import BadInputError

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 4096


@runtime_checkable
class Predictor(Protocol):
    """What a batch job needs from the clay model, wherever it runs."""

    @property
    def inputs(self) -> tuple[str, ...]:
        """The model's input names, in :data:`~soilclay.contract.INPUT_FEATURES` order."""
        ...

    @property
    def version(self) -> int:
        """The model version that answers (the TF Serving version directory)."""
        ...

    def predict(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs ``clay``, ``clay_lower``, ``clay_upper`` (float32) and ``in_domain`` (bool), one per row."""
        ...

    def close(self) -> None:
        """Release the model or the connections."""
        ...


# --- pure helpers: inputs, batches, outputs ---------------------------------------------------------------------


def check_arrays(arrays: Mapping[str, Any], inputs: tuple[str, ...]) -> tuple[dict[str, np.ndarray], int]:
    """Return ``arrays`` as C-contiguous float32 ``(n, width)`` arrays and ``n``, or raise naming the problem.

    The keys must be exactly ``inputs``: a missing one cannot be predicted, and an extra one (e.g. ``sar`` for a
    model trained without SAR) means the caller and the model disagree, which is better said than ignored.
    """
    if not isinstance(arrays, Mapping):
        raise BadInputError(f"predict() takes a mapping of input name to array, found {type(arrays).__name__}")
    missing = [n for n in inputs if n not in arrays]
    extra = sorted(set(arrays) - set(inputs))
    if missing or extra:
        raise BadInputError(f"the model takes inputs {list(inputs)}; missing {missing}, unexpected {extra}")
    out: dict[str, np.ndarray] = {}
    rows: set[int] = set()
    for name in inputs:
        arr = np.asarray(arrays[name])
        width = len(INPUT_FEATURES[name])
        if arr.dtype.kind not in "fiu":
            raise BadInputError(f"input {name!r} must hold real numbers, found dtype {arr.dtype}")
        if arr.ndim != 2 or arr.shape[1] != width:
            raise BadInputError(f"input {name!r} must have shape (n, {width}) ({', '.join(INPUT_FEATURES[name])}), "
                                f"found {arr.shape}")
        out[name] = np.ascontiguousarray(arr, dtype=INPUT_DTYPE)
        rows.add(arr.shape[0])
    if len(rows) > 1:
        raise BadInputError(f"all inputs must have the same number of rows, found "
                            f"{ {n: a.shape[0] for n, a in out.items()} }")
    return out, rows.pop() if rows else 0


def check_batch_size(batch_size: Any) -> int:
    """``batch_size`` if it is an integer >= 1 (not a bool), else raise."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise BadInputError(f"batch_size must be an integer >= 1, found {batch_size!r}")
    return batch_size


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive row slices of at most ``batch_size`` rows covering ``0..n``."""
    return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def check_outputs(outputs: Mapping[str, Any], rows: int) -> dict[str, np.ndarray]:
    """``outputs`` restricted to :data:`OUTPUTS`, each ``(rows,)`` of its dtype; raise ``ValueError`` otherwise."""
    missing = [name for name in OUTPUTS if name not in outputs]
    if missing:
        raise ValueError(f"outputs {missing} are missing; found {sorted(outputs)}")
    checked = {}
    for name in OUTPUTS:
        arr = np.asarray(outputs[name])
        if arr.shape != (rows,) or arr.dtype != OUTPUT_DTYPES[name]:
            raise ValueError(f"output {name!r} must be {OUTPUT_DTYPES[name]} of shape ({rows},), "
                             f"found {arr.dtype} of shape {arr.shape}")
        checked[name] = arr
    return checked


def signature_inputs(input_specs: Mapping[str, tuple[str, list[int | None]]]) -> tuple[str, ...]:
    """Check a signature's ``{name: (dtype, shape)}`` inputs against the contract; return the names in order.

    Raises ``ValueError``: the caller knows which model it read and says so.
    """
    unknown = sorted(set(input_specs) - set(INPUT_FEATURES))
    if unknown:
        raise ValueError(f"the signature has inputs {unknown} that are not among {list(INPUT_FEATURES)}")
    for name, (dtype, shape) in input_specs.items():
        expected = [None, len(INPUT_FEATURES[name])]
        if dtype != INPUT_DTYPE.name or list(shape) != expected:
            raise ValueError(f"signature input {name!r} must be {INPUT_DTYPE.name} {expected}, "
                             f"found {dtype} {list(shape)}")
    return check_inputs(tuple(n for n in INPUT_FEATURES if n in input_specs))


def check_signature_outputs(output_dtypes: Mapping[str, str]) -> None:
    """Raise ``ValueError`` unless a signature's ``{name: dtype}`` outputs include :data:`OUTPUTS` as contracted."""
    wrong = {n: output_dtypes.get(n) for n in OUTPUTS if output_dtypes.get(n) != OUTPUT_DTYPES[n].name}
    if wrong:
        expected = {n: OUTPUT_DTYPES[n].name for n in OUTPUTS}
        raise ValueError(f"the signature's outputs must include {expected}; these differ: {wrong} "
                         f"(found outputs {dict(output_dtypes)})")


# --- the batch loop ---------------------------------------------------------------------------------------------


class BatchedPredictor:
    """A :class:`Predictor` that checks inputs, runs :meth:`_predict_batch` per batch and checks what comes back.

    Subclasses set ``batch_size`` and ``_version``, and implement :attr:`inputs`, :meth:`_predict_batch`,
    :meth:`close` and :attr:`where` (how messages and ``repr`` name the model).
    """

    batch_size: int
    _version: int

    @property
    def inputs(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def version(self) -> int:
        return self._version

    @property
    def where(self) -> str:
        raise NotImplementedError

    def _predict_batch(self, batch: dict[str, np.ndarray], rows: int, what: str) -> dict[str, np.ndarray]:
        """The checked outputs (:func:`check_outputs`) of one batch of ``rows`` rows; ``what`` names it."""
        raise NotImplementedError

    def predict(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs per row (see :class:`Predictor`), computed in batches of at most ``batch_size`` rows."""
        batch, n = check_arrays(arrays, self.inputs)
        result = {name: np.empty(n, OUTPUT_DTYPES[name]) for name in OUTPUTS}
        slices = batch_slices(n, self.batch_size)
        log.debug("predicting %d rows in %d batches with %s", n, len(slices), self.where)
        for i, rows in enumerate(slices):
            what = f"Predict (batch {i + 1}/{len(slices)}, rows {rows.start}..{rows.stop - 1})"
            part = self._predict_batch({name: arr[rows] for name, arr in batch.items()}, rows.stop - rows.start, what)
            for name in OUTPUTS:
                result[name][rows] = part[name]
        return result

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where})"
