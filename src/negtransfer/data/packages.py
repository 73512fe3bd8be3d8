"""Data files shipped inside installed Python packages, found without importing the packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["MissingPackageError", "package_file"]


class MissingPackageError(ImportError):
    """A built-in dataset's package is not installed; the message says what to install."""


def package_file(package: str, relative: str, *, install: str) -> Path:
    """Path of a data file shipped inside an installed package, without importing it.

    Parameters
    ----------
    package : str
        Top-level package name (``"river"``).
    relative : str
        Path inside the package folder (``"datasets/yeast.csv.gz"``).
    install : str
        What to tell the user to install when the package is missing.

    Raises
    ------
    MissingPackageError
        The package is not installed, or the file is not in it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise MissingPackageError(f"this dataset ships in the {package!r} package, which is not installed: {install}")
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        candidate = Path(root) / relative
        if candidate.is_file():
            return candidate
    raise MissingPackageError(
        f"the installed {package!r} package has no file {relative!r} (looked in {', '.join(roots) or 'nowhere'}); "
        f"a different version may have moved it: {install}"
    )
