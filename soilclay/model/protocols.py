"""Validation protocols as fold assignments: each sample gets the index of the fold in which it is
held out. Pure and deterministic for a seed.

- ``holdout``: the paper's single random 80/20 calibration/validation split (one fold, 1 = held out,
  0 = always training; encoded as fold ids 0 and -1 for "never held out").
- ``kfold``: k random folds, or the data set's predefined folds.
- ``spatial``: square blocks of ``block_size_m`` on a projected grid, whole blocks assigned to k
  folds; random splits overstate accuracy when samples are spatially autocorrelated.
"""

from __future__ import annotations

import numpy as np

from soilclay.errors import BadInputError

NEVER = -1  # fold id of samples that are never held out (the holdout protocol's calibration set)


def holdout_folds(n: int, fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 1])
    folds = np.full(n, NEVER, dtype=int)
    folds[rng.permutation(n)[: max(1, int(round(n * fraction)))]] = 0
    return folds


def kfold_folds(n: int, k: int, seed: int, predefined: np.ndarray | None = None) -> np.ndarray:
    if predefined is not None:
        values = np.asarray(predefined)
        if values.shape != (n,):
            raise ValueError(f"predefined folds must have one value per sample ({n}), found shape {values.shape}")
        _, folds = np.unique(values, return_inverse=True)
        if folds.max() < 1:
            raise ValueError("predefined folds hold a single fold: at least two are needed")
        return folds
    if n < k:
        raise BadInputError(f"{k}-fold CV needs at least {k} samples, found {n}")
    rng = np.random.default_rng([seed, 2])
    folds = np.empty(n, dtype=int)
    folds[rng.permutation(n)] = np.arange(n) % k
    return folds


#: Blocks are never made smaller than the configured size divided by this (so they stay blocks).
MAX_SHRINK = 32


def _blocks(x: np.ndarray, y: np.ndarray, block_size: float) -> tuple[np.ndarray, np.ndarray]:
    bx = np.floor(np.asarray(x) / block_size).astype(np.int64)
    by = np.floor(np.asarray(y) / block_size).astype(np.int64)
    blocks, block_of = np.unique(np.stack([bx, by], axis=1), axis=0, return_inverse=True)
    return blocks, block_of.ravel()


def count_blocks(x: np.ndarray, y: np.ndarray, block_size: float) -> int:
    return len(_blocks(x, y, block_size)[0])


def fit_block_size(x: np.ndarray, y: np.ndarray, block_size: float, k: int) -> float:
    """The configured ``block_size`` if the samples fill at least ``k`` blocks of it, else the largest
    halving of it that does (a small AOI gets smaller blocks, not a failure); at most
    :data:`MAX_SHRINK` times smaller, beyond that the data cannot hold ``k`` spatial folds."""
    if len(x) < k:
        raise BadInputError(f"spatial CV with {k} folds needs at least {k} samples, found {len(x)}")
    size = float(block_size)
    while count_blocks(x, y, size) < k:
        if size / 2 < block_size / MAX_SHRINK:
            raise BadInputError(
                f"spatial CV with {k} folds needs at least {k} blocks: the {len(x)} samples fill only "
                f"{count_blocks(x, y, size)} blocks even of {size:g} m (configured {block_size:g} m); "
                "use fewer folds or smaller blocks")
        size /= 2
    return size


def spatial_folds(x: np.ndarray, y: np.ndarray, block_size: float, k: int, seed: int) -> np.ndarray:
    """Whole ``block_size`` squares per fold (x, y projected, in metres), balanced by sample count."""
    blocks, block_of = _blocks(x, y, block_size)
    if len(blocks) < k:
        raise BadInputError(f"spatial CV with {k} folds needs at least {k} blocks of {block_size:g} m, "
                            f"found {len(blocks)}: use smaller blocks")
    counts = np.bincount(block_of)
    rng = np.random.default_rng([seed, 3])
    order = rng.permutation(len(blocks))
    order = order[np.argsort(-counts[order], kind="stable")]  # biggest blocks first, ties in random order
    load = np.zeros(k, dtype=int)
    fold_of_block = np.empty(len(blocks), dtype=int)
    for b in order:  # greedy: each block to the fold with the fewest samples so far
        f = int(np.argmin(load))
        fold_of_block[b] = f
        load[f] += counts[b]
    return fold_of_block[block_of]


def splits(folds: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train index, test index) per fold id, ignoring NEVER."""
    return [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in np.unique(folds[folds != NEVER])]
