"""Read-only HDF5 artifacts, checked on open: the shared part of every reader."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import h5py
import numpy as np

from promptlam.errors import UserError
from promptlam.io import temporary_path


class DataFileError(UserError):
    """A data file that cannot be used; the message is one line naming the file."""


class CheckedH5File:
    """An artifact written by promptlam: its ``format`` and version match, and it is complete.

    Subclasses name their format and check their own datasets in ``_check``; any failure closes
    the file and raises a one-line ``DataFileError`` naming it.
    """

    FORMAT: ClassVar[str]
    FORMAT_VERSION: ClassVar[int]
    DESCRIPTION: ClassVar[str]

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataFileError(f"{self.path}: {self.DESCRIPTION} not found")
        try:
            self.file = h5py.File(self.path, "r")
        except OSError:
            raise DataFileError(
                f"{self.path}: not a readable HDF5 file (truncated or corrupt?); expected a promptlam "
                f"{self.DESCRIPTION}: delete it and rerun the rule that makes it"
            ) from None
        try:
            attrs = self.file.attrs
            if attrs.get("format") != self.FORMAT:
                raise self._fail(f"not a promptlam {self.DESCRIPTION} (format attribute "
                                 f"{attrs.get('format')!r}, expected {self.FORMAT!r})")
            if attrs.get("format_version") != self.FORMAT_VERSION:
                raise self._fail(f"format version {attrs.get('format_version')}, expected "
                                 f"{self.FORMAT_VERSION}: delete it and rerun")
            if not attrs.get("complete", False):
                raise self._fail("incomplete (the writer did not finish): delete it and rerun")
            self._check()
        except DataFileError:
            self.file.close()
            raise

    def _check(self) -> None:
        """Checks of the subclass's own datasets (raise ``self._fail(...)``)."""

    def dataset(self, name: str) -> CheckedDataset:
        """Dataset ``name``, whose reads fail in one line naming this file when the data is damaged."""
        return CheckedDataset(self.path, name, self.file[name])

    def verify(self) -> None:
        """Read every dataset once, chunk by chunk, so that HDF5 checks each chunk's checksum
        (files written since the checksums came; older files have none to check)."""
        names: list[str] = []
        self.file.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        for name in names:
            dataset = self.dataset(name)
            if dataset.chunks and dataset.size:
                for selection in dataset.iter_chunks():
                    dataset[selection]
            else:  # contiguous (no checksum) or empty
                dataset[()]

    def _fail(self, message: str) -> DataFileError:
        return DataFileError(f"{self.path}: {message}")

    @property
    def provenance(self) -> dict[str, Any]:
        return json.loads(self.file.attrs["provenance"])

    def close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CheckedDataset:
    """An HDF5 dataset of a promptlam file. Its chunks carry Fletcher-32 checksums that HDF5
    verifies on every read (``CHECKSUMS``), so bytes changed on disk are caught instead of being
    trusted; a failed read becomes one line naming the file (h5py's error names neither)."""

    def __init__(self, path: Path, name: str, dataset: h5py.Dataset) -> None:
        self._path, self._name, self._dataset = path, name, dataset

    def __getitem__(self, selection: Any) -> Any:
        try:
            return self._dataset[selection]
        except OSError as exc:
            raise DataFileError(f"{self._path}: dataset {self._name!r} cannot be read ({exc}): the file is "
                                "damaged; delete it and rerun the rule that makes it") from None

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self[()], dtype=dtype)

    def __len__(self) -> int:
        return len(self._dataset)

    def __getattr__(self, attribute: str) -> Any:  # shape, dtype, chunks, iter_chunks, ...
        return getattr(self._dataset, attribute)


CHECKSUMS = {"fletcher32": True}
"""Options of every chunked dataset a writer creates: a checksum per chunk."""


class AtomicH5Writer:
    """Writes ``<path>.tmp`` and renames it to ``path`` only when the ``with`` block and
    ``_finalize`` succeed; otherwise the temporary file is removed. A killed process leaves at
    most the ``.tmp``, which no reader accepts and the next run overwrites."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _create(self) -> None:
        """Create the datasets in ``self.file``."""

    def _finalize(self) -> None:
        """Write what completes the file (tables, statistics, attributes with ``complete`` last)."""

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temporary_path(self.path)
        self.file = h5py.File(self._tmp, "w")  # truncates what a killed run left
        self._create()
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        complete = False
        try:
            if exc_type is None:
                self._finalize()
                complete = True
        finally:
            self.file.close()
            if complete:
                os.replace(self._tmp, self.path)
            else:
                self._tmp.unlink(missing_ok=True)
        return False
