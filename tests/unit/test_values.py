"""The unit-value parsers: time spans, command lines, environment."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stackfleet.unit.values import (
    ExecCommand,
    decode_environment_file,
    expand_argv,
    parse_environment,
    parse_environment_file,
    parse_exec,
    parse_timespan,
)

# --- parse_timespan ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5", 5.0),
        ("5s", 5.0),
        (" 5 s ", 5.0),
        ("500ms", 0.5),
        ("1min 30s", 90.0),
        ("1min30s", 90.0),
        ("2h", 7200.0),
        ("1d 1h", 90000.0),
        ("1.5s", 1.5),
        (".25s", 0.25),
        ("100us", 1e-4),
        ("2 minutes", 120.0),
        ("1w", 604800.0),
        ("0", 0.0),
        ("infinity", math.inf),
    ],
)
def test_parse_timespan(text: str, seconds: float) -> None:
    assert parse_timespan(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "  ", "5x", "-5s", "s", "1min x", "five", "5s 3q", "inf"])
def test_parse_timespan_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="time span"):
        parse_timespan(text)


@given(st.integers(0, 10**6), st.integers(0, 59))
def test_parse_timespan_sums_minutes_and_seconds(minutes: int, seconds: int) -> None:
    assert parse_timespan(f"{minutes}min {seconds}s") == minutes * 60 + seconds
    assert parse_timespan(f"{minutes}min{seconds}s") == minutes * 60 + seconds


# --- parse_exec -------------------------------------------------------------------------------


def test_parse_exec_plain_and_quoted() -> None:
    cmd = parse_exec("/bin/sh -c 'echo hi; exec sleep 1000'")
    assert cmd == ExecCommand(argv=("/bin/sh", "-c", "echo hi; exec sleep 1000"))
    assert not cmd.ignore_failure


def test_parse_exec_dash_prefix_ignores_failure() -> None:
    cmd = parse_exec("-/bin/rm -f /tmp/x")
    assert cmd.argv == ("/bin/rm", "-f", "/tmp/x")
    assert cmd.ignore_failure


def test_parse_exec_at_prefix_sets_argv0() -> None:
    cmd = parse_exec("@/bin/sleep mysleeper 5")
    assert cmd.argv == ("/bin/sleep", "5")
    assert cmd.argv0 == "mysleeper"


def test_parse_exec_privilege_prefixes_are_accepted() -> None:
    for prefix in ("+", "!", "!!", "-+", "+-@"):
        cmd = parse_exec(f"{prefix}/bin/true a" + (" b" if "@" in prefix else ""))
        assert cmd.argv[0] == "/bin/true"
        assert cmd.ignore_failure == ("-" in prefix)


def test_parse_exec_colon_prefix_disables_expansion() -> None:
    cmd = parse_exec(":/bin/echo $HOME ${HOME}")
    assert not cmd.expand_env
    assert expand_argv(cmd, {"HOME": "/root"}) == ["/bin/echo", "$HOME", "${HOME}"]


def test_parse_exec_quotes_inside_words_and_escapes() -> None:
    cmd = parse_exec(r'/bin/echo a"b c"d "x\"y" \x41 \t \\ e\ f "\101"')
    assert cmd.argv == ("/bin/echo", "ab cd", 'x"y', "A", "\t", "\\", "e f", "A")


def test_parse_exec_escaped_semicolon_is_a_word() -> None:
    assert parse_exec(r"/usr/bin/find . -exec rm {} \;").argv[-1] == ";"


def test_parse_exec_bare_name_is_allowed() -> None:
    assert parse_exec("sleep 1").argv == ("sleep", "1")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty command"),
        ("   ", "empty command"),
        ("-", "empty command"),
        ("/bin/sh -c 'unterminated", "unbalanced"),
        ('/bin/echo "x', "unbalanced"),
        ("/bin/echo a ; /bin/echo b", "';' separates commands"),
        ("./relative/path", "absolute path"),
        ("bin/x", "absolute path"),
        ("/bin/echo \\q", "invalid escape"),
        ("/bin/echo trailing\\", "trailing backslash"),
        ("@/bin/sleep", "needs an argv"),
        ("--/bin/true", "twice"),
        ("$PROGRAM --flag", "never expanded"),
        ("/opt/${BIN}/app", "never expanded"),
        (":/opt/$X/app", "never expanded"),
    ],
)
def test_parse_exec_rejects(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_exec(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/bin/echo \\x00", "escaped NUL"),
        ("/bin/echo \\000", "escaped NUL"),
        ("/bin/echo \\u0000", "escaped NUL"),
        ("/bin/echo \\U00000000", "escaped NUL"),
        ("/bin/echo a\\x00b", "escaped NUL"),
        ("/bin/echo \\ud800", "not a character"),
        ("/bin/echo \\U00110000", "not a character"),
    ],
)
def test_escapes_that_no_argument_can_hold_are_refused(value: str, message: str) -> None:
    """systemd's cunescape refuses them too; exec would fail on them at run time."""
    with pytest.raises(ValueError, match=message):
        parse_exec(value)
    with pytest.raises(ValueError, match=message):
        parse_environment([value.replace("/bin/echo ", "A=")])


def test_other_escapes_still_decode() -> None:
    assert parse_exec("/bin/echo \\x41\\101\\u00e9").argv == ("/bin/echo", "AAé")


def test_exec_command_json_round_trip() -> None:
    cmd = parse_exec("-@:/bin/sh name -c 'x y'")
    assert ExecCommand.from_json(cmd.to_json()) == cmd


# --- expand_argv ------------------------------------------------------------------------------


def test_expand_whole_word_var_splits_at_whitespace() -> None:
    cmd = parse_exec("/bin/prog $OPTS end")
    assert expand_argv(cmd, {"OPTS": " -a  -b "}) == ["/bin/prog", "-a", "-b", "end"]


def test_expand_braced_var_keeps_one_word() -> None:
    cmd = parse_exec("/bin/prog ${OPTS} --x=${OPTS}")
    assert expand_argv(cmd, {"OPTS": "-a -b"}) == ["/bin/prog", "-a -b", "--x=-a -b"]


def test_expand_missing_vars() -> None:
    cmd = parse_exec("/bin/prog $NOPE ${NOPE} x")
    assert expand_argv(cmd, {}) == ["/bin/prog", "", "x"]


def test_expand_dollar_dollar_and_embedded_dollar_word() -> None:
    # Only a whole word $VAR or ${VAR} is a variable; "a$B" stays as written (systemd rule).
    cmd = parse_exec("/bin/sh -c 'echo $$HOME a$B'")
    assert expand_argv(cmd, {"HOME": "/h", "B": "b"}) == ["/bin/sh", "-c", "echo $HOME a$B"]


def test_expand_mainpid_for_exec_stop() -> None:
    cmd = parse_exec("/bin/kill -TERM $MAINPID")
    assert expand_argv(cmd, {"MAINPID": "4242"}) == ["/bin/kill", "-TERM", "4242"]


def test_expand_default_and_alternative() -> None:
    cmd = parse_exec("/bin/p ${A:-dflt} ${B:-dflt} ${A:+alt} ${B:+alt}")
    assert expand_argv(cmd, {"A": "set"}) == ["/bin/p", "set", "dflt", "alt", ""]


def test_executable_is_not_expanded() -> None:
    cmd = ExecCommand(argv=("$X", "$X"))
    assert expand_argv(cmd, {"X": "y"}) == ["$X", "y"]


# --- parse_environment ------------------------------------------------------------------------


def test_parse_environment_quoted_and_plain() -> None:
    assert parse_environment(['"A=1" B=2', "C='x y' D=\"a \\\"q\\\"\""]) == {
        "A": "1", "B": "2", "C": "x y", "D": 'a "q"'}


def test_parse_environment_later_wins_and_empty_resets() -> None:
    assert parse_environment(["A=1 B=2", "A=3"]) == {"A": "3", "B": "2"}
    assert parse_environment(["A=1", "", "B=2"]) == {"B": "2"}


def test_parse_environment_value_may_contain_equals_and_be_empty() -> None:
    assert parse_environment(["URL=http://h/?a=b E="]) == {"URL": "http://h/?a=b", "E": ""}


@pytest.mark.parametrize("value", ["NOEQUALS", "1A=2", "A-B=1", "=x", '"A=1'])
def test_parse_environment_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parse_environment([value])


@given(st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True),
                       st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)))
def test_parse_environment_round_trips_double_quoted(env: dict[str, str]) -> None:
    quoted = " ".join(
        '"' + f"{k}={v}".replace("\\", "\\\\").replace('"', '\\"') + '"' for k, v in env.items())
    assert parse_environment([quoted] if quoted else []) == env


# --- parse_environment_file -------------------------------------------------------------------


def test_parse_environment_file() -> None:
    text = (
        "# a comment\n"
        "; another comment\n"
        "\n"
        "A=1\n"
        "  B = spaced value   \n"
        'C="double \\"quoted\\" $x"\n'
        "D='single \\n kept'\n"
        "E=multi\\\n"
        "line\n"
        'F="two\n'
        'lines"\n'
        "G=\n"
        "H=a#b\n"
    )
    assert parse_environment_file(text) == {
        "A": "1",
        "B": "spaced value",
        "C": 'double "quoted" $x',
        "D": "single \\n kept",
        "E": "multiline",
        "F": "two\nlines",
        "G": "",
        "H": "a#b",
    }


def test_parse_environment_file_later_wins() -> None:
    assert parse_environment_file("A=1\nA=2\n") == {"A": "2"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A=1\nJUSTAWORD\n", "line 2: expected NAME=VALUE"),
        ("1A=2\n", "line 1: invalid variable name"),
        ('A="open\n', "line 1: unbalanced"),
        ("A=1\nB='x\n", "line 2: unbalanced"),
    ],
)
def test_parse_environment_file_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_environment_file(text)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"A=1\nB=\xff\n", "line 2: not valid UTF-8"),
        (b"\xfe\xffA=1\n", "line 1: not valid UTF-8"),
        (b"A=1\n\nB=x\x00y\n", "line 3: contains a NUL byte"),
        (b"A='x\n\x00'\n", "line 2: contains a NUL byte"),
    ],
)
def test_an_environment_file_read_at_run_time_must_be_utf8_without_nul(
        data: bytes, message: str) -> None:
    """The runtime reads the bytes; a bad file is an error it can report, never a crash."""
    with pytest.raises(ValueError, match=message):
        decode_environment_file(data)


def test_decode_environment_file_parses_utf8() -> None:
    assert decode_environment_file("A=é\nB='x y'\n".encode()) == {"A": "é", "B": "x y"}
