"""One copy of a loaded model's arrays for all the workers of a group: memory-mapped files.

With ``WISATA_WORKERS=N`` every worker loads the same artifacts. Once a worker has verified and
unpickled one, :func:`share_arrays` moves the model's large arrays into files of the group's
folder (``arrays/``, one ``.npy`` per array, named by the payload checksum) and replaces each
with a read-only memory map of its file. The first worker to load a version writes the files;
the others find them, check them against what they unpickled and map them, so the kernel keeps
one copy of the pages for the whole group. The unpickled copies are then freed.

The folder keeps one version per model: sharing a version removes the files of the model's
other versions. A worker still serving one of those keeps its mapping (an unlinked file stays
readable while it is mapped), and a worker that loads it later writes it again.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import functools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator

from service.ml.recommenders import Recommender

__all__ = ["MIN_SHARED_BYTES", "share_arrays"]

logger = logging.getLogger(__name__)

MIN_SHARED_BYTES = 1 << 16
"""Arrays smaller than this (64 KiB) stay private: a page each would save nothing."""


def share_arrays(model: Recommender, folder: Path, name: str, checksum: str) -> int:
    """Replace ``model``'s large arrays by shared read-only maps; return the bytes now shared.

    ``name`` and ``checksum`` (the artifact's payload digest) name the files. Arrays of nested
    estimators (the NMF's components) and of sparse matrices are shared too; attached
    sub-models are not (they are shared when they are loaded themselves).
    """
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"{name}-{checksum[:32]}-"
    shared = 0
    with _locked(folder):
        for owner, attribute, array in list(_arrays(model)):
            path = folder / f"{prefix}{attribute}.npy"
            mapped = _mapped(path, array)
            setattr(owner, attribute.rsplit(".", 1)[-1], mapped)
            shared += mapped.nbytes
        for stale in folder.glob(f"{name}-*.npy"):
            if not stale.name.startswith(prefix):
                stale.unlink(missing_ok=True)
    _release_freed_memory()
    logger.debug("%s %s: %d bytes shared with the other workers", name, checksum[:12], shared)
    return shared


def _arrays(model: Recommender) -> Iterator[tuple[Any, str, np.ndarray]]:
    """(object holding it, dotted attribute path, array) for each array worth sharing."""

    def visit(owner: Any, path: str) -> Iterator[tuple[Any, str, np.ndarray]]:
        for key, value in list(vars(owner).items()):
            here = f"{path}{key}"
            if isinstance(value, np.ndarray):
                if value.dtype.hasobject or value.nbytes < MIN_SHARED_BYTES:
                    continue
                yield owner, here, value
            elif sp.issparse(value) and value.format in ("csr", "csc"):
                yield from visit_sparse(value, here)
            elif isinstance(value, BaseEstimator) and not isinstance(value, Recommender):
                yield from visit(value, f"{here}.")

    def visit_sparse(matrix: Any, path: str) -> Iterator[tuple[Any, str, np.ndarray]]:
        for key in ("data", "indices", "indptr"):
            value = getattr(matrix, key)
            if value.nbytes >= MIN_SHARED_BYTES:
                yield matrix, f"{path}.{key}", value

    yield from visit(model, "")


def _mapped(path: Path, array: np.ndarray) -> np.ndarray:
    """A read-only map of ``path`` holding ``array``, written first when absent or different."""
    if path.exists():
        with contextlib.suppress(OSError, ValueError):
            found = np.load(path, mmap_mode="r", allow_pickle=False)
            if found.dtype == array.dtype and np.array_equal(found, array):
                return _plain(found)
            logger.warning("%s differs from the loaded array: writing it again", path.name)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with temporary.open("wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    temporary.replace(path)
    return _plain(np.load(path, mmap_mode="r", allow_pickle=False))


def _plain(mapped: np.ndarray) -> np.ndarray:
    """The map as a plain read-only ndarray (numpy keeps the map open through ``.base``)."""
    view = mapped.view(np.ndarray)
    view.flags.writeable = False
    return view


def _release_freed_memory() -> None:
    """Give the unpickled copies' pages back to the kernel (glibc keeps freed heap otherwise).

    glibc raises its mmap threshold each time a large block is freed, so the arrays unpickled
    after the first load live on the heap, and freeing them does not shrink the process.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, looked up once (None elsewhere)."""
    name = ctypes.util.find_library("c")  # runs ldconfig: not at every load
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One worker at a time writes or maps: the second finds the first's files."""
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
