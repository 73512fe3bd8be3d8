"""The catalogue of comparison models for ``negtransfer compare``: one module per model family.

* :mod:`negtransfer.models.base`: :class:`~negtransfer.models.base.ModelSpec`,
  :class:`~negtransfer.models.base.ModelCatalogue`, the shared fit options;
* :mod:`negtransfer.models.vmtl`: VMTL / VMTL-AC and their baselines (domains data);
* :mod:`negtransfer.models.clinical`: TP-AMTL / P-AMTL and their baselines
  (time series; binary tables);
* :mod:`negtransfer.models.catalogue`: :func:`~negtransfer.models.catalogue.default_catalogue`,
  which lists the families explicitly.

This layer sits above :mod:`negtransfer.nn` (plain modules) and
:mod:`negtransfer.train` (the fit loops) and below :mod:`negtransfer.jobs`.
Importing it registers nothing; a new family is a module with a
``model_specs()`` function, added to :func:`~negtransfer.models.catalogue.default_catalogue`.
"""
