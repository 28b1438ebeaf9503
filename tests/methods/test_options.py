"""Methods declare their options and budget kinds; one check reads them (issue 15, part 1)."""

from __future__ import annotations

import inspect
import math
from dataclasses import fields

import pytest

from metanas.errors import ConfigError
from metanas.methods.interface import Budget
from metanas.methods.options import (
    BASEOptions,
    GradientNASOptions,
    NoOptions,
    ValueNetOptions,
)
from metanas.methods.registry import METHODS


@pytest.mark.parametrize("name", list(METHODS))
def test_search_takes_exactly_the_declared_options(name):
    cls = METHODS[name].load_class()
    params = inspect.signature(cls._search).parameters
    declared = {f.name for f in fields(cls.Options)}
    assert set(params) - {"self", "dataset", "top", "seed", "budget", "progress"} == declared
    for p in params.values():  # the defaults live in Options only
        assert p.default is inspect.Parameter.empty or p.name == "self"
    assert cls.budget_kinds <= {"seconds", "evaluations"}


@pytest.mark.parametrize("value, message", [
    ("abc", "restarts must be an integer >= 1, got 'abc'"),
    (1.5, "restarts must be an integer >= 1, got 1.5"),
    (True, "restarts must be an integer"),
    (0, "restarts must be an integer >= 1, got 0"),
    (-1, "got -1"),
])
def test_wrong_types_and_ranges_are_one_line_errors(value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        ValueNetOptions.parse({"restarts": value}, "value-net")
    assert "\n" not in str(info.value) and str(info.value).startswith("value-net option")


def test_choices_unknown_names_and_cross_checks():
    with pytest.raises(ConfigError, match="mode must be one of gradient, exhaustive"):
        ValueNetOptions.parse({"mode": "fast"}, "value-net")
    with pytest.raises(ConfigError, match="has no option.*stepz.*its options: mode"):
        BASEOptions.parse({"stepz": 1}, "base")
    with pytest.raises(ConfigError, match="no adapt_steps"):
        BASEOptions.parse({"mode": "prior", "adapt_steps": 3}, "base")
    with pytest.raises(ConfigError, match="finite number"):
        BASEOptions.parse({"prior_strength": math.nan}, "base")
    with pytest.raises(ConfigError, match="its options: none"):
        NoOptions.parse({"x": 1}, "random")


def test_values_are_coerced_to_the_declared_type():
    o = GradientNASOptions.parse({"resolutions": "16,32", "arch_lr": 1}, "darts")
    assert o.resolutions == (16, 32) and o.arch_lr == 1.0 and isinstance(o.arch_lr, float)
    assert GradientNASOptions.parse({"resolutions": 16}, "darts").resolutions == (16,)
    with pytest.raises(ConfigError, match="resolutions must be an integer in \\[8, 512\\], got 7"):
        GradientNASOptions.parse({"resolutions": 7}, "darts")
    with pytest.raises(ConfigError, match="resolutions must be an integer"):
        GradientNASOptions.parse({"resolutions": "16,abc"}, "darts")
    assert ValueNetOptions.parse({"prior_pool": "false", "resolution": None},
                                 "value-net").prior_pool is False
    assert ValueNetOptions.parse({}, "value-net") == ValueNetOptions()
    assert BASEOptions.parse({"prior_exclude": 2}, "base").prior_exclude == "2"


def test_budget_kinds_are_checked_once_for_every_method():
    for name, spec in METHODS.items():
        cls = spec.load_class()
        for kind in ("seconds", "evaluations"):
            budget = Budget(**{kind: 5})
            if kind in cls.budget_kinds:
                assert cls.check_budget(budget) is budget
            else:
                with pytest.raises(ConfigError, match=f"^{name} takes"):
                    cls.check_budget(budget)
        assert cls.check_budget(Budget()) is None and cls.check_budget(None) is None


def test_listing_options_needs_no_method_import():
    rows = {r["name"]: r for r in ValueNetOptions.describe()}
    assert rows["restarts"] == {"name": "restarts", "type": "int", "default": 8,
                                "help": "gradient-ascent restarts"}
    assert rows["resolution"]["type"] == "int | None"


def test_cli_lists_a_methods_options_and_budget_kinds():
    import json

    from typer.testing import CliRunner

    from metanas.cli import app

    res = CliRunner().invoke(app, ["methods", "darts", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["budget_kinds"] == ["seconds"]
    assert {"name": "resolutions", "type": "tuple[int, ...]", "default": [16, 32],
            "help": "resolutions with their own heads"} in info["options"]
    res = CliRunner().invoke(app, ["methods", "value-net"])
    assert res.exit_code == 0 and "restarts" in res.output and "budget: none" in res.output


def test_meta_training_configs_check_types_like_search_options():
    """``meta-train --set``: every config field is checked against its type first."""
    from metanas.methods.base.config import BASEConfig
    from metanas.methods.interface import config_from_options
    from metanas.methods.value_net.model import ValueNetConfig

    assert config_from_options(BASEConfig, {"resolutions": 32}, "base").resolutions == (32,)
    assert config_from_options(BASEConfig, {"resolutions": "16,32"}, "base").resolutions == (16, 32)
    assert config_from_options(ValueNetConfig, {"lr": 1}, "value-net").lr == 1.0
    assert config_from_options(ValueNetConfig, {"recipe": 3}, "value-net").recipe == "3"
    for cls, what, values, message in [
        (BASEConfig, "base", {"resolutions": "abc"}, "resolutions must be an integer"),
        (BASEConfig, "base", {"meta_steps": 1.5}, "meta_steps must be an integer, got 1.5"),
        (BASEConfig, "base", {"meta_lr": math.nan}, "meta_lr must be a finite number"),
        (ValueNetConfig, "value-net", {"epochs": "abc"}, "epochs must be an integer"),
    ]:
        with pytest.raises(ConfigError, match=f"{what} option {message}"):
            config_from_options(cls, values, what)


def test_search_arguments_are_not_method_options():
    from metanas import api

    with pytest.raises(ConfigError, match="seed: an argument of search itself"):
        api.search("digits", options={"seed": 1})


def test_numbers_beyond_a_float_and_huge_integers_are_one_line_errors():
    from metanas.methods.value_net.model import ValueNetConfig

    with pytest.raises(ConfigError, match="prior_strength must be a finite number"):
        BASEOptions.parse({"prior_strength": 10**400}, "base")
    from metanas.methods.interface import config_from_options

    with pytest.raises(ConfigError, match="value-net option lr must be a finite number"):
        config_from_options(ValueNetConfig, {"lr": 10**400}, "value-net")
