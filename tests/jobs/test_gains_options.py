"""The gains job's options as the Python API receives them."""

import numpy as np


def test_numpy_whole_numbers_of_the_gains_job_are_taken():
    """repeats=np.int64(2) was refused as "--repeats must be a positive integer, got np.int64(2)"."""
    from negtransfer.jobs.gains import GainsOptions

    options = GainsOptions(groups="all", repeats=np.int64(2), chunk_size=np.int32(4), folds=np.int64(1))
    assert (options.repeats, options.chunk_size, options.folds) == (2, 4, 1) and type(options.repeats) is int
    assert options.requested_groups(["a", "b"], 0) == [(0, 1)]
