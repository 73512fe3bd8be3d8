import numpy as np

from negtransfer.select.acquisition import cross_validated_error, optimistic_improvement, rank_acquisitions


def test_rank_puts_the_selection_first_then_the_largest_improvements():
    improvement = np.array([0.0, 0.5, 0.2, 0.3, 0.0, 0.9])
    measured = np.array([False, False, False, False, False, True])
    # row 4 is selected (unmeasured) and goes first; row 5 is measured and never acquired;
    # then by improvement; rows that cannot improve anything are not acquired
    assert rank_acquisitions([4, 5], improvement, measured, limit=10) == [4, 1, 3, 2]
    assert rank_acquisitions([4, 5], improvement, measured, limit=2) == [4, 1]
    assert rank_acquisitions([4, 0], improvement, measured, limit=1) == [4, 0]  # the selection always


def test_optimistic_improvement_counts_only_gains_over_the_incumbent():
    U = np.array([[1, 1, 0], [0, 1, 1]], dtype=bool)
    opt = np.where(U, np.array([[0.3, 0.1, 0.0], [0.0, 0.5, -0.2]]), np.nan)
    incumbent = np.array([0.1, 0.2, 0.0])
    np.testing.assert_allclose(optimistic_improvement(U, opt, incumbent), [0.2, 0.3])


def test_cross_validated_error_measures_the_predictor_error():
    rng = np.random.default_rng(0)
    U = rng.random((30, 4)) < 0.6
    U[:, 0] = True
    truth = np.where(U, rng.normal(size=(30, 4)), np.nan)

    def perfect(train, test):
        return truth[test]

    def off_by_half(train, test):
        return truth[test] + 0.5

    np.testing.assert_allclose(cross_validated_error(perfect, U, truth), 0.0)
    np.testing.assert_allclose(cross_validated_error(off_by_half, U, truth), 0.5)
    assert np.isnan(cross_validated_error(perfect, U[:2], truth[:2])).all()
