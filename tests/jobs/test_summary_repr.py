"""The short repr of the job reports: floats to four significant digits, at any depth."""

from negtransfer.jobs.summary_repr import short, summary_repr


def test_floats_are_shortened_at_any_depth_and_the_rest_is_repr():
    assert short(0.123456789) == "0.1235"
    assert short({"a": [1.0 / 3, ("x",)], "b": None}) == "{'a': [0.3333, ('x',)], 'b': None}"
    assert short((("a", "b"), ("c",))) == "(('a', 'b'), ('c',))"
    assert summary_repr("Report", target="t1", loss=2.0 / 3) == "Report(target='t1', loss=0.6667)"
