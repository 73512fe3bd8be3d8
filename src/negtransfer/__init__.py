"""negtransfer: find, predict and avoid negative transfer between learning tasks.

One function per question, each taking a pandas DataFrame (or a built-in
dataset's name, or a MultiTaskDataset) and keyword options and returning a
typed report (docs/api.md): :func:`gains` (which tasks help or hurt each
other), :func:`group` (how to group them), :func:`sources` (which source tasks
to train a target with), :func:`compare` (how named models do).

Importing the package is cheap: PyTorch, pandas, scikit-learn and matplotlib are
imported by the submodules that need them, never here; the functions are
loaded from :mod:`negtransfer.api` on first use.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "compare", "gains", "group", "sources"]

#: The functions of the Python API, loaded from :mod:`negtransfer.api` when first used.
_API = ("compare", "gains", "group", "sources")


def __getattr__(name: str):
    if name == "gains":  # the subpackage, callable as the API's gains() (importing it sets the attribute anyway)
        import sys

        import negtransfer.gains  # noqa: F401

        return sys.modules["negtransfer.gains"]
    if name in _API:
        from negtransfer import api

        return getattr(api, name)
    raise AttributeError(f"module 'negtransfer' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(_API))
