"""Gain tables and gain predictors (ETAP, TAG, HOA, MTG-Net, GRAD-TAE, linear surrogate, Ayman et al.).

The package is also the Python API's ``negtransfer.gains(data, ...)``: calling
it runs the gains job (:func:`negtransfer.api.gains`), so the function and this
package share their name without one hiding the other. Its parameters and
what it returns: ``help(negtransfer.api.gains)``.
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    """This package, callable as :func:`negtransfer.api.gains`."""

    def __call__(self, *args, **kwargs):
        from negtransfer.api import gains

        return gains(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
