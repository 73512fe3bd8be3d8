"""The default model catalogue: every family of :mod:`negtransfer.models`, listed explicitly."""

from __future__ import annotations

from negtransfer.models import clinical, vmtl
from negtransfer.models.base import ModelCatalogue

__all__ = ["FAMILIES", "default_catalogue"]

#: The model families, in the order ``negtransfer compare`` lists their models.
FAMILIES = (vmtl, clinical)


def default_catalogue() -> ModelCatalogue:
    """A new catalogue holding every model of every family (add your own with :meth:`ModelCatalogue.add`)."""
    catalogue = ModelCatalogue()
    for family in FAMILIES:
        for spec in family.model_specs():
            catalogue.add(spec)
    return catalogue
