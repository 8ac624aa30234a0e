"""The [X-Stackfleet] section: our own options, validated with file:line like [X-Fleet]."""
from __future__ import annotations

from pathlib import Path

import pytest

from stackfleet.unit import UnitInvalid, load_unit_file, parse_unit

REPO = Path(__file__).resolve().parents[2]
GLOBAL = "[Service]\nExecStart=/bin/true\n[X-Fleet]\nGlobal=true\n[X-Stackfleet]\n"


def errors(text: str) -> list[str]:
    with pytest.raises(UnitInvalid) as info:
        parse_unit(text, "u.service", "u.service")
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize(("lines", "expected"), [
    ("", False),
    ("FenceOnLeaseLoss=true\n", True),
    ("FenceOnLeaseLoss=yes\n", True),
    ("FenceOnLeaseLoss=off\n", False),
    ("FenceOnLeaseLoss=true\nFenceOnLeaseLoss=false\n", False),  # the last value wins
    ("FenceOnLeaseLoss=true\nFenceOnLeaseLoss=\n", False),  # an empty assignment resets it
])
def test_fence_on_lease_loss_is_read(lines: str, expected: bool) -> None:
    assert parse_unit(GLOBAL + lines, "u.service").options.fence_on_lease_loss is expected


def test_a_unit_without_the_section_is_not_fenced_on_lease_loss() -> None:
    assert not parse_unit("[Service]\nExecStart=/bin/true\n", "u.service").options.fence_on_lease_loss


def test_a_bad_value_is_an_error_at_its_line() -> None:
    [error] = errors(GLOBAL + "FenceOnLeaseLoss=maybe\n")
    assert error.startswith("u.service:6: FenceOnLeaseLoss=maybe: 'maybe' is not a boolean")


def test_an_unknown_key_is_an_error_with_a_hint_as_in_x_fleet() -> None:
    [error] = errors(GLOBAL + "FenceOnLeaseLos=true\n")
    assert error.startswith("u.service:6: unknown setting FenceOnLeaseLos= in [X-Stackfleet]")
    assert "did you mean FenceOnLeaseLoss?" in error
    fleet_key = errors(GLOBAL + "Global=true\n")
    assert fleet_key[0].startswith("u.service:6: unknown setting Global= in [X-Stackfleet]")


def test_a_misspelt_section_name_is_refused_not_ignored() -> None:
    [error] = errors("[Service]\nExecStart=/bin/true\n[X-StackFleet]\nFenceOnLeaseLoss=true\n")
    assert error.startswith("u.service:3: unknown section [X-StackFleet]")
    assert "[X-Stackfleet]" in error


def test_an_exclusive_unit_cannot_turn_its_fence_off() -> None:
    text = "[Service]\nExecStart=/bin/true\n[X-Stackfleet]\nFenceOnLeaseLoss=false\n"
    [error] = errors(text)
    assert error.startswith("u.service:4: an exclusive unit is always fenced on lease loss")
    on = "[Service]\nExecStart=/bin/true\n[X-Stackfleet]\nFenceOnLeaseLoss=true\n"
    assert parse_unit(on, "u.service").options.fence_on_lease_loss  # redundant, but true


def test_compute_service_is_fenced_on_lease_loss() -> None:
    unit = load_unit_file(str(REPO / "units" / "compute.service"))
    assert unit.constraints.global_ and unit.options.fence_on_lease_loss
