"""Architecture strings: random text and mutations of valid NATS-Bench / DARTS strings."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from metanas.spaces.darts.genotype import DartsGenotype
from metanas.spaces.nb201 import OPS, NB201Arch

from .conftest import FUZZ, loads_cleanly

VALID = [NB201Arch(tuple((i * 7 + j) % len(OPS) for j in range(6))).to_string() for i in range(5)]
TOKENS = ["|", "+", "~", "~0", "~1", "~9", "none", "skip_connect", "nor_conv_3x3", "avg_pool_3x3",
          "\n", " ", "\x00", "é", "|" * 50]


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 8)))
        insert = draw(st.one_of(st.sampled_from(TOKENS), st.text(max_size=5)))
        text = text[:i] + insert + text[j:]
    return text


def _parse_nb201(text: str) -> None:
    arch = NB201Arch.from_string(text)
    assert NB201Arch.from_string(arch.to_string()) == arch  # what parses, round-trips


@FUZZ
@given(st.one_of(st.text(max_size=200), mutated(), st.text(min_size=1, max_size=3).map(
    lambda s: s * 40_000)))
def test_nb201_strings_parse_or_fail_in_one_line(text):
    loads_cleanly(_parse_nb201, text)


@FUZZ
@given(st.one_of(st.text(max_size=200), st.sampled_from(VALID), st.builds(
    lambda ops, n: "Genotype(normal=[" + ", ".join(f"('{o}', {n})" for o in ops) + "])",
    st.lists(st.sampled_from(["sep_conv_3x3", "skip_connect", "x", "'"]), max_size=9),
    st.integers(-2, 9))))
def test_darts_genotypes_parse_or_fail_in_one_line(text):
    loads_cleanly(DartsGenotype.from_string, text)


def test_a_100_kb_architecture_is_not_echoed_whole():
    import pytest

    from metanas.errors import ArchitectureError

    with pytest.raises(ArchitectureError) as info:
        NB201Arch.from_string("|none~0|" * 12_500)
    assert len(str(info.value)) < 600 and "100,000 characters" in str(info.value)
