import pytest

from stackfleet.openstack import settings as s


def complete() -> dict[str, str]:
    raw = dict(s.DEFAULTS)
    raw.update(s.missing_defaults(raw))
    return raw


def test_ha_mode_refuses_unknown_value_and_names_the_allowed_ones():
    with pytest.raises(s.SettingsError) as err:
        s.validate("HA_MODE", "dvr2")
    assert "L3_HA" in str(err.value) and "DVR" in str(err.value) and "dvr2" in str(err.value)


@pytest.mark.parametrize("key", ["HA_MODE", "ha_mode", "ha-mode"])
def test_ha_mode_spellings_normalize(key):
    assert s.validate(key, "dvr") == ("ha_mode", "DVR")
    assert s.validate(key, "l3_ha") == ("ha_mode", "L3_HA")


def test_unknown_key_is_refused():
    with pytest.raises(s.SettingsError, match="unknown setting"):
        s.validate("colour", "blue")


def test_release_must_be_the_installed_one():
    assert s.validate("release", s.RELEASE) == ("release", s.RELEASE)
    with pytest.raises(s.SettingsError, match=s.RELEASE):
        s.validate("release", "2015.1")


def test_short_password_is_refused():
    with pytest.raises(s.SettingsError, match="at least"):
        s.validate("admin_password", "adminpass")


def test_words_with_spaces_are_refused():
    with pytest.raises(s.SettingsError):
        s.validate("region", "Region One")


def test_first_use_generates_every_password_distinct_and_random():
    first, second = s.missing_defaults({}), s.missing_defaults({})
    passwords = [first[k] for k in s.PASSWORD_KEYS]
    assert len(set(passwords)) == len(passwords)
    assert all(len(p) >= s.MIN_PASSWORD_LENGTH for p in passwords)
    assert all(first[k] != second[k] for k in s.PASSWORD_KEYS)


def test_no_default_password_exists():
    assert not set(s.DEFAULTS) & set(s.PASSWORD_KEYS)
    assert "adminpass" not in s.missing_defaults({}).values()


def test_missing_defaults_keeps_what_is_stored():
    stored = {"ha_mode": "DVR", "admin_password": "x" * 20}
    added = s.missing_defaults(stored)
    assert "ha_mode" not in added and "admin_password" not in added
    assert added["region"] == "RegionOne"


def test_parse_complete_settings():
    raw = complete()
    raw["ha_mode"] = "dvr"
    parsed = s.parse(raw)
    assert parsed.ha_mode == "DVR" and parsed.release == s.RELEASE
    assert parsed.password("nova_password") == raw["nova_password"]


def test_parse_refuses_incomplete_and_invalid_settings():
    raw = complete()
    del raw["nova_password"]
    with pytest.raises(s.SettingsError, match="nova_password"):
        s.parse(raw)
    raw = complete()
    raw["ha_mode"] = "both"
    with pytest.raises(s.SettingsError):
        s.parse(raw)


def test_shown_masks_passwords_only():
    shown = s.shown(complete())
    assert shown["region"] == "RegionOne"
    assert all(shown[k] == "********" for k in s.PASSWORD_KEYS)


def test_instance_ha_is_an_on_off_switch_that_defaults_to_on() -> None:
    assert s.validate("INSTANCE_HA", "Off") == ("instance_ha", "off")
    assert s.validate("instance-ha", "true") == ("instance_ha", "on")
    with pytest.raises(s.SettingsError, match="allowed values: on or off"):
        s.validate("INSTANCE_HA", "maybe")
    assert s.switched_on({}, "instance_ha") is True
    assert s.switched_on({"instance_ha": "off"}, "instance_ha") is False
    assert s.missing_defaults({})["instance_ha"] == "on"
