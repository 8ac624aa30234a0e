"""Helpers shared by the unit-package tests (this module holds no tests itself)."""
from __future__ import annotations

import pytest

from stackfleet.unit import UnitError, UnitFile, UnitInvalid, parse_unit

SERVICE = "[Service]\nExecStart=/bin/true\n"


def fleet_unit(fleet_body: str, name: str = "app.service") -> UnitFile:
    """A valid service whose [X-Fleet] section is fleet_body."""
    return parse_unit(SERVICE + "[X-Fleet]\n" + fleet_body, name)


def errors_of(text: str, name: str = "app.service", path: str | None = None) -> list[UnitError]:
    with pytest.raises(UnitInvalid) as info:
        parse_unit(text, name, path)
    return info.value.errors


def one_error(text: str, name: str = "app.service") -> UnitError:
    errors = errors_of(text, name)
    assert len(errors) == 1, errors
    return errors[0]


def fleet_errors(fleet_body: str, name: str = "app.service") -> list[UnitError]:
    return errors_of(SERVICE + "[X-Fleet]\n" + fleet_body, name)


def fleet_error(fleet_body: str, name: str = "app.service") -> UnitError:
    return one_error(SERVICE + "[X-Fleet]\n" + fleet_body, name)
