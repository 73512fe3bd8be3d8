"""negtransfer: find, predict and avoid negative transfer between learning tasks.

Importing the package is cheap: PyTorch, pandas, scikit-learn and matplotlib are
imported by the submodules that need them, never here.
"""

__version__ = "0.1.0"
