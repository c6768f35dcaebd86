"""RNNConfig validation: every field's bad values, the history budget, parse_value, presets."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bptt.config import FIELDS, HISTORY_BUDGET, PRESET_NOTES, PRESETS, ConfigError, RNNConfig, parse_value, preset

NUMERIC = [f for f in FIELDS.values() if f.kind is not str]
CHOICE = [f for f in FIELDS.values() if f.kind is str]


def _bad_numbers(field) -> list:
    """Values a numeric field must refuse: below, above, nan, inf, bools, strings, None (and fractions for ints)."""
    bad = [field.lo - 1, field.hi + 1, float("nan"), float("inf"), float("-inf"), True, False, "3", None, [1]]
    if field.lo > 0:
        bad.append(0)
    if field.kind is int:
        bad += [2.5, field.lo + 0.5, np.float64(1.5)]
    else:
        bad += [field.lo / 2, field.hi * 1.0001, np.float64(np.nan), complex(1, 0)]
    return bad


CASES = [(f.name, v) for f in NUMERIC for v in _bad_numbers(f)] + \
        [(f.name, v) for f in CHOICE for v in ("", "unknown", f.choices[0].upper(), None, 1, True)]


def _check_error(err: ConfigError, name: str) -> None:
    assert isinstance(err, ValueError)
    assert err.field == name
    msg = str(err)
    assert name in msg
    assert FIELDS[name].allowed() in msg            # names the allowed range / choices
    assert "\n" not in msg                          # one line, fit for a CLI error or a sidebar message


# ----------------------------------------------------------------------------------------------------------------------
# construction

@pytest.mark.parametrize("name,bad", CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_bad_value_names_the_field_and_what_is_allowed(name: str, bad) -> None:
    with pytest.raises(ConfigError) as info:
        RNNConfig(**{name: bad})
    _check_error(info.value, name)
    assert repr(bad) in str(info.value) or isinstance(bad, float) and math.isnan(bad)


@pytest.mark.parametrize("field", NUMERIC, ids=lambda f: f.name)
def test_bounds_are_inclusive(field) -> None:
    for v in (field.lo, field.hi):
        cfg = RNNConfig(**{field.name: field.kind(v)})
        assert getattr(cfg, field.name) == v
        assert type(getattr(cfg, field.name)) is field.kind


def test_values_are_normalised_to_the_field_type() -> None:
    cfg = RNNConfig(seq_len=4.0, hidden_size=np.int64(6), hh_scale=2, seed=np.uint32(7))
    assert (cfg.seq_len, cfg.hidden_size, cfg.hh_scale, cfg.seed) == (4, 6, 2.0, 7)
    assert type(cfg.seq_len) is int and type(cfg.hidden_size) is int and type(cfg.hh_scale) is float
    assert type(cfg.seed) is int


def test_defaults_are_the_worked_example() -> None:
    cfg = RNNConfig()
    assert (cfg.input_size, cfg.hidden_size, cfg.seq_len, cfg.batch_size, cfg.seed) == (4, 5, 3, 3, 123)
    assert (cfg.nonlinearity, cfg.upstream, cfg.hh_scale, cfg.truncate, cfg.bug) == ("tanh", "all", 1.0, 0, "none")
    assert cfg.differs_from_default() == {}


def test_config_is_frozen_and_round_trips() -> None:
    cfg = RNNConfig(hidden_size=7, nonlinearity="relu", hh_scale=0.5)
    with pytest.raises(AttributeError):
        cfg.hidden_size = 3  # type: ignore[misc]
    assert RNNConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(seq_len=9).seq_len == 9
    assert cfg.differs_from_default() == {"hidden_size": 7, "nonlinearity": "relu", "hh_scale": 0.5}
    with pytest.raises(ConfigError) as info:
        cfg.replace(seq_len=0)
    assert info.value.field == "seq_len"


def test_from_dict_refuses_unknown_fields() -> None:
    with pytest.raises(ConfigError) as info:
        RNNConfig.from_dict({"hidden_size": 3, "hiden_size": 4})
    assert info.value.field == "hiden_size"
    assert "hiden_size" in str(info.value) and "hidden_size" in str(info.value)


# ----------------------------------------------------------------------------------------------------------------------
# the history budget

def test_history_budget_boundary() -> None:
    # 64 * 256 * (256 + 256) is exactly the budget: allowed; one more step is not
    assert HISTORY_BUDGET == 64 * 256 * 512
    RNNConfig(seq_len=64, hidden_size=256, input_size=256)
    with pytest.raises(ConfigError) as info:
        RNNConfig(seq_len=65, hidden_size=256, input_size=256)
    msg = str(info.value)
    assert info.value.field == "seq_len"
    assert f"{HISTORY_BUDGET:,}" in msg and f"{65 * 256 * 512:,}" in msg
    assert "64 MiB" in msg
    assert all(word in msg for word in ("shrink", "seq_len", "hidden_size", "input_size"))


def test_history_budget_each_field_alone_is_in_bounds() -> None:
    # every field is within its own bounds here; only the product is refused
    with pytest.raises(ConfigError):
        RNNConfig(seq_len=200, hidden_size=256, input_size=4)
    RNNConfig(seq_len=120, hidden_size=256, input_size=4)


# ----------------------------------------------------------------------------------------------------------------------
# parse_value (URL and CLI text)

@pytest.mark.parametrize("name", [f.name for f in NUMERIC])
@pytest.mark.parametrize("raw", ["abc", "", "   ", "-4", "1e999", "nan", "inf", "5 6", "0x10", "True"])
def test_parse_refuses(name: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_value(name, raw)
    _check_error(info.value, name)
    assert repr(raw) in str(info.value)


@pytest.mark.parametrize("name", [f.name for f in NUMERIC if f.name != "seed"])
def test_parse_1e9_is_refused(name: str) -> None:
    # out of range read as a number, and not an integer literal for the int fields
    with pytest.raises(ConfigError) as info:
        parse_value(name, "1e9")
    _check_error(info.value, name)


def test_parse_int_fields_want_integer_literals() -> None:
    with pytest.raises(ConfigError) as info:
        parse_value("seed", "1e9")          # in range as a number, but not written as an integer
    assert info.value.field == "seed"
    with pytest.raises(ConfigError):
        parse_value("seq_len", "2.5")
    assert parse_value("seed", "1000000000") == 10**9


@pytest.mark.parametrize("name", [f.name for f in NUMERIC])
def test_parse_strips_spaces(name: str) -> None:
    value = parse_value(name, " 5 ")
    assert value == 5 and type(value) is FIELDS[name].kind


def test_parse_floats_and_choices() -> None:
    assert parse_value("hh_scale", "2.5") == 2.5
    assert parse_value("hh_scale", "1e-1") == 0.1
    assert parse_value("nonlinearity", " relu ") == "relu"
    assert parse_value("upstream", "last") == "last"
    assert parse_value("bug", "forget-carry") == "forget-carry"
    for name in ("nonlinearity", "upstream", "bug"):
        with pytest.raises(ConfigError) as info:
            parse_value(name, "sigmoid")
        _check_error(info.value, name)


def test_parse_unknown_field() -> None:
    with pytest.raises(ConfigError) as info:
        parse_value("hiddensize", "5")
    assert info.value.field == "hiddensize"
    assert "hiddensize" in str(info.value)


def test_parsed_values_build_the_same_config() -> None:
    cfg = RNNConfig(input_size=2, hidden_size=6, seq_len=8, batch_size=1, seed=9, nonlinearity="relu",
                    upstream="last", hh_scale=3.25, truncate=2, bug="carry-transposed")
    assert RNNConfig(**{k: parse_value(k, str(v)) for k, v in cfg.to_dict().items()}) == cfg


# ----------------------------------------------------------------------------------------------------------------------
# presets

@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_build_valid_configs(name: str) -> None:
    cfg = preset(name)
    assert isinstance(cfg, RNNConfig)
    assert RNNConfig(**cfg.to_dict()) == cfg
    assert all(getattr(cfg, k) == v for k, v in PRESETS[name].items())
    assert set(cfg.differs_from_default()) <= set(PRESETS[name])
    assert PRESET_NOTES[name]
    assert cfg.bug == "none"


def test_worked_example_preset_is_the_default() -> None:
    assert preset("Worked example") == RNNConfig()
    assert set(PRESET_NOTES) == set(PRESETS)
