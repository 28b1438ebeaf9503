"""Search options and budgets of every method, as a user could type them (``--set KEY=VALUE``
arrives JSON-decoded): each either parses to the declared type or is a one-line error."""

from __future__ import annotations

import math
from dataclasses import fields

from hypothesis import given
from hypothesis import strategies as st

from metanas.methods.interface import Budget
from metanas.methods.options import (
    BASEOptions,
    BASEPriorOptions,
    FisherNearestOptions,
    GlobalPriorOptions,
    GradientNASOptions,
    MetaD2AOptions,
    NearestBestOptions,
    NoOptions,
    ValueNetOptions,
    ZeroCostOptions,
)

from .conftest import FUZZ, loads_cleanly

OPTIONS = (BASEOptions, BASEPriorOptions, FisherNearestOptions, GlobalPriorOptions,
           GradientNASOptions, MetaD2AOptions, NearestBestOptions, NoOptions, ValueNetOptions,
           ZeroCostOptions)
NAMES = sorted({f.name for cls in OPTIONS for f in fields(cls)} | {"bogus"})
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=60),
    st.lists(st.one_of(st.integers(-100, 1000), st.text(max_size=5)), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@FUZZ
@given(cls=st.sampled_from(OPTIONS), values=st.dictionaries(st.sampled_from(NAMES), VALUES,
                                                             max_size=4))
def test_any_option_values_parse_or_fail_in_one_line(cls, values):
    parsed = loads_cleanly(cls.parse, values, "fuzzed")
    if parsed is not None:
        hints = {f.name: f for f in fields(cls)}
        for name, value in parsed.as_kwargs().items():
            assert name in hints
            if isinstance(value, float):
                assert math.isfinite(value)


@FUZZ
@given(seconds=st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-5, 10**9),
                         st.booleans(), st.text(max_size=4)),
       evaluations=st.one_of(st.none(), st.integers(-5, 10**9), st.floats(allow_nan=True),
                             st.booleans()))
def test_any_budget_is_valid_or_one_line(seconds, evaluations):
    budget = loads_cleanly(Budget, seconds=seconds, evaluations=evaluations)
    if budget is not None and budget.seconds is not None:
        assert math.isfinite(budget.seconds) and budget.seconds > 0
