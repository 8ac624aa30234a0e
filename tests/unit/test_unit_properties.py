"""Properties over generated input: constraints round-trip, the parser fails only with UnitInvalid."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stackfleet.unit import Constraints, UnitInvalid, parse_unit, parse_unit_name
from test_unit_support import SERVICE

WORD = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=8)


def names(prefix: str) -> st.SearchStrategy[str]:
    return WORD.map(lambda w: f"{prefix}{w}.service")


@st.composite
def constraints(draw: st.DrawFn) -> Constraints:
    """Constraints that fleet's rules allow together."""
    meta = draw(st.dictionaries(WORD, st.frozensets(WORD, min_size=1, max_size=3), max_size=3))
    shape = draw(st.sampled_from(["global", "machine", "peers", "replaces"]))
    unique = lambda s: st.lists(s, max_size=3, unique=True).map(tuple)  # noqa: E731
    if shape == "global":
        return Constraints(machine_metadata=meta, conflicts=draw(unique(names("c-"))), global_=True)
    if shape == "machine":
        return Constraints(machine_id=draw(st.text("0123456789abcdef", min_size=32, max_size=32)),
                           machine_metadata=meta)
    peers = draw(unique(names("p-")))
    if shape == "peers":
        return Constraints(machine_of=peers, machine_metadata=meta,
                           conflicts=draw(unique(names("c-").map(lambda n: n.replace(".", "*.", 1)))))
    return Constraints(machine_of=peers, machine_metadata=meta, replaces=draw(unique(names("r-"))))


def render(cons: Constraints, style: st.DataObject) -> str:
    """The [X-Fleet] text of cons, each list written one item per line, all on one
    line, or quoted, as the draw decides."""
    lines: list[str] = []

    def emit(key: str, items: list[str]) -> None:
        if not items:
            return
        how = style.draw(st.sampled_from(["lines", "spaces", "quoted"]))
        if how == "lines":
            lines.extend(f"{key}={item}" for item in items)
        elif how == "spaces":
            lines.append(f"{key}=" + " ".join(items))
        else:
            lines.append(f"{key}=" + " ".join(f'"{item}"' for item in items))

    if cons.machine_id:
        emit("MachineID", [cons.machine_id])
    emit("MachineOf", list(cons.machine_of))
    emit("MachineMetadata", [f"{k}={v}" for k, vs in cons.machine_metadata.items() for v in sorted(vs)])
    emit("Conflicts", list(cons.conflicts))
    emit("Replaces", list(cons.replaces))
    if cons.global_:
        emit("Global", [style.draw(st.sampled_from(["true", "yes", "1", "on"]))])
    order = style.draw(st.permutations(lines))
    return "[X-Fleet]\n" + "\n".join(order) + "\n"


@settings(max_examples=200, deadline=None)
@given(cons=constraints(), style=st.data())
def test_rendered_constraints_parse_back_to_themselves(cons: Constraints, style: st.DataObject) -> None:
    unit = parse_unit(SERVICE + render(cons, style), "self.service")
    got = unit.constraints
    assert got.machine_id == cons.machine_id
    assert set(got.machine_of) == set(cons.machine_of)
    assert got.machine_metadata == cons.machine_metadata
    assert set(got.conflicts) == set(cons.conflicts)
    assert set(got.replaces) == set(cons.replaces)
    assert got.global_ == cons.global_
    assert Constraints.from_json(got.to_json()) == got


LINE_PARTS = st.sampled_from([
    "[Service]", "[Unit]", "[X-Fleet]", "[Bogus]", "[", "]", "ExecStart=/bin/true", "Restart=",
    "Restart=always", "Restart=bad", "RestartSec=5", "RestartSec=x", "MachineID=a", "Global=true",
    "MachineOf=x.service", "Conflicts=[", "MachineMetadata=a", 'MachineMetadata="a=b', "=", "%",
    "%i", "%%", "\\", "#", ";", "\"", "'", " ", "\t", "\r", "\ufeff", "ExecStart=", "Key=Value",
])
TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.lists(LINE_PARTS, max_size=4).map("".join), max_size=12).map("\n".join),
)


@settings(max_examples=400, deadline=None)
@given(text=TEXT, name=st.sampled_from(["a.service", "a@.service", "a@1.service", "a.socket", "bad"]))
def test_parser_raises_nothing_but_unit_invalid(text: str, name: str) -> None:
    try:
        unit = parse_unit(text, name, "/u/f")
    except UnitInvalid as invalid:
        line_count = text.count("\n") + 1
        for err in invalid.errors:
            assert err.path == "/u/f" and 0 <= err.line <= line_count
            assert str(err).startswith(f"/u/f:{err.line}: ")
    else:
        assert unit.text == text and unit.name == name


@settings(max_examples=200, deadline=None)
@given(text=TEXT)
def test_a_line_inserted_on_top_shifts_every_error_by_one(text: str) -> None:
    def lines(t: str) -> list[int] | None:
        try:
            parse_unit(t, "a.service")
        except UnitInvalid as invalid:
            return [e.line for e in invalid.errors if e.line]
        return None

    before, after = lines(text), lines("# comment\n" + text.removeprefix("\ufeff"))
    assert (before is None) == (after is None)
    if before is not None and after is not None:
        assert after == [line + 1 for line in before]


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=30))
def test_unit_name_parsing_raises_nothing_but_unit_invalid(name: str) -> None:
    try:
        parsed = parse_unit_name(name)
    except UnitInvalid as invalid:
        assert invalid.errors and invalid.errors[0].hint
    else:
        assert parsed.name == name and name.endswith("." + parsed.unit_type)


@settings(max_examples=100, deadline=None)
@given(a=st.text(max_size=50), b=st.text(max_size=50))
def test_hash_equal_exactly_when_text_equal(a: str, b: str) -> None:
    ha = parse_unit(SERVICE + "# " + a.replace("\n", " ") + "\n", "a.service").hash
    hb = parse_unit(SERVICE + "# " + b.replace("\n", " ") + "\n", "a.service").hash
    assert (ha == hb) == (a.replace("\n", " ") == b.replace("\n", " "))
