"""What a config value may be: rules that name what a value must be where it is not valid.

A rule maps a value to None where it is valid, else to what it must be ("choose from srgb, gamma, none", "it must
be a number ≥ 0"), for a one-line ConfigError that also names the key and the value (check_section). Named choices
are read from their registry or table when checked, so a stage registered after import is valid at once. The
rules themselves live beside what they check: the sampler's in hidd.sampling.settings, the learned map's training in
hidd.map_train, the others' in hidd.settings.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Iterable

from hidd.config import ConfigError

Rule = Callable[[object], str | None]  # a value → what it must be where it is not valid, else None


def one_of(names: Callable[[], Iterable] | Iterable) -> Rule:
    """A name from a registry or table (read when checked, so registrations made after import count)."""
    def rule(value):
        valid = [str(n) for n in (names() if callable(names) else names)]
        if str(value) in valid:
            return None
        close = difflib.get_close_matches(str(value), valid, n=1)
        return (f"did you mean '{close[0]}'? " if close else "") + f"choose from {', '.join(valid)}"
    return rule


def number(low: float = -math.inf, high: float = math.inf, *, open_low: bool = False, open_high: bool = False,
           also: tuple = ()) -> Rule:
    """A number in [low, high] (or the open ends), or one of `also` (an 'off' value outside the range)."""
    def rule(value):
        if value in also or ((low < value if open_low else low <= value) and
                             (value < high if open_high else value <= high)):
            return None
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        span = (f"> {low:g}" if open_low else f"≥ {low:g}") if high == math.inf else \
            f"in {left}{low:g}, {high:g}{right}"
        return "it must be " + " or ".join([f"{v:g}" for v in also] + [f"a number {span}"])
    return rule


def each(rule: Rule, *, empty: bool = True) -> Rule:
    """A rule for every item of a list (which may be empty where `empty`)."""
    def check(values):
        if not values and not empty:
            return "it must list at least one value"
        return next((f"{problem} (every item)" for problem in map(rule, values) if problem), None)
    return check


def anything(_value) -> None:  # free values: seeds, paths (their files are checked when they are read), flags
    return None


POSITIVE, NON_NEGATIVE, COUNT, SHARE = number(0, open_low=True), number(0), number(1), number(0, 1)
FRACTION = number(0, 1, open_high=True)  # [0, 1): decay rates, dropout


def check_section(section, rules: dict[str, Rule], where: str) -> None:
    """ConfigError (one line) for the first value of a config section (a dataclass) outside its rule."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        problem = rules[f.name](value)
        if problem:
            raise ConfigError(f"{where}.{f.name}: {value!r} is not valid; {problem}")
