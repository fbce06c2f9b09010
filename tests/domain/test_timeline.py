"""A firm's timeline says, for every day of its span, what posture_on says for that day."""

from datetime import date, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.evaluator import Finding, posture_on, timeline
from domain.types import Status

START = date(2025, 1, 1)
days = st.integers(0, 60).map(lambda n: START + timedelta(days=n))


@st.composite
def findings(draw: st.DrawFn) -> Finding:
    valid_from = draw(days)
    length = draw(st.none() | st.integers(1, 30))
    return Finding(draw(st.sampled_from(["a", "b"])), "lease", draw(st.sampled_from("xyz")),
                   draw(st.sampled_from(["r1", "r2"])), valid_from,
                   None if length is None else valid_from + timedelta(days=length),
                   draw(st.sampled_from(list(Status))), "c", "e", ())


@settings(max_examples=200, deadline=None)
@given(st.lists(findings(), max_size=12), days, st.integers(1, 40))
def test_every_day_of_the_timeline_has_the_posture_of_that_day(
    drawn: list[Finding], start: date, span: int,
):
    end = start + timedelta(days=span)
    pieces = timeline("a", drawn, start, end)

    # The pieces tile [start, end) and neighbours differ.
    assert pieces[0][0] == start
    assert pieces[-1][1] == end
    assert all(a[1] == b[0] and a[2] != b[2] for a, b in pairwise(pieces))

    # Each day's status is the one posture_on gives for that day.
    for valid_from, valid_to, status in pieces:
        day = valid_from
        while day < valid_to:
            assert posture_on("a", drawn, day).status == status
            day += timedelta(days=1)
