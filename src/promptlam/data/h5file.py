"""Read-only HDF5 artifacts, checked on open: the shared part of every reader."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import h5py

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
