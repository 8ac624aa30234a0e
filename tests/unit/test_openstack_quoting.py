"""Hostile passwords through every format the roles render, read back by the format's own parser:
bash and shlex for openrc, PyYAML for clouds.yaml, urllib, SQLAlchemy and oslo.messaging for the
URLs, oslo.config for the INI files, Erlang for RabbitMQ's advanced.config. The parsers that live
in the OpenStack venv run there (its python, one process per format)."""
import base64
import dataclasses
import json
import shlex
import shutil
import subprocess
import textwrap
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from stackfleet.openstack import configs, quoting, settings
from stackfleet.openstack.shared_data import SharedLayout
from stackfleet.openstack.venv import default_venv

MARKER = "/tmp/stackfleet-quoting-pwned"
HOSTILE = [
    f"$(touch {MARKER})", f"`touch {MARKER}`", f"x; touch {MARKER}", "it's", "'single'",
    '"double"', '"', "'", "a: b # c", "#hash first", ";semi first", "*alias", "&anchor", "!tag",
    "- dash", "? what", "|pipe", ">fold", "%percent%41", "p@ss/w#rd:?x=1&y", "$HOME ${x} $$ $",
    "back\\slash\\", "tab\there", "  spaces around  ", "ünïcödé ☃ 😀", "\x7f\x1b[0m\ufeff",
    "null", "true", "1e3", "0x1F", "2026-12-01", "[a, b]", "{a: b}", "~",
]
LINE_BREAKS = ["a\nb", "a\rb", "a\r\nb", "a\u2028b", "a\x85b", "a\x00b"]
OPENSTACK_PYTHON = default_venv() / "bin" / "python"


def site_with(password: str) -> configs.Site:
    raw = dict(settings.DEFAULTS)
    raw.update(settings.missing_defaults(raw))
    parsed = settings.parse(raw)
    # Built past settings.validate, which strips spaces: the renderers must carry any value.
    hostile = dataclasses.replace(parsed, passwords=dict.fromkeys(parsed.passwords, password))
    return configs.Site(settings=hostile, controller="10.9.0.5", address="10.9.0.7",
                        host="controller", shared=SharedLayout(Path("/shared")),
                        state=Path("/state"), venv=Path("/venv"))


def in_openstack_venv(script: str, payload: object) -> object:
    """Runs script in the OpenStack venv with payload as JSON on stdin; returns its JSON answer."""
    if not OPENSTACK_PYTHON.exists():
        pytest.skip(f"needs the OpenStack venv at {default_venv()}")
    proc = subprocess.run([str(OPENSTACK_PYTHON), "-c", textwrap.dedent(script)],
                          input=json.dumps(payload), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def no_marker():
    Path(MARKER).unlink(missing_ok=True)
    yield
    assert not Path(MARKER).exists(), "sourcing or parsing a rendered file ran a command"


@pytest.mark.parametrize("password", HOSTILE)
def test_openrc_sourced_by_bash_gives_back_the_password_and_runs_nothing(
        password, tmp_path, no_marker):
    rc = tmp_path / "openrc"
    rc.write_text(configs.openrc(site_with(password).settings, "10.9.0.5"))
    got = subprocess.run(["bash", "-c", 'source "$1" && printf %s "$OS_PASSWORD"', "_", str(rc)],
                         capture_output=True, timeout=10, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert got.stdout.decode() == password
    words = [w for w in shlex.split(rc.read_text()) if w != "export"]
    assert dict(w.split("=", 1) for w in words)["OS_PASSWORD"] == password


def test_openrc_variables_are_the_admin_credentials():
    site = site_with(HOSTILE[0])
    words = [w for w in shlex.split(configs.openrc(site.settings, "10.9.0.5")) if w != "export"]
    assert dict(w.split("=", 1) for w in words) == configs.admin_credentials(site.settings,
                                                                             "10.9.0.5")


def test_clouds_yaml_read_by_pyyaml_gives_back_every_password():
    texts = [configs.clouds_yaml(site_with(pw).settings, "10.9.0.5") for pw in HOSTILE]
    loaded = in_openstack_venv("""
        import json, sys, yaml
        print(json.dumps([yaml.safe_load(t) for t in json.load(sys.stdin)]))
    """, texts)
    for password, doc in zip(HOSTILE, loaded, strict=True):
        auth = doc["clouds"]["stackfleet"]["auth"]
        assert auth["password"] == password
        assert auth["auth_url"] == "http://10.9.0.5:5000/v3" and auth["username"] == "admin"
        assert doc["clouds"]["stackfleet"]["identity_api_version"] == 3


@pytest.mark.parametrize("password", HOSTILE + LINE_BREAKS)
def test_yaml_and_shell_carry_line_breaks_too(password):
    assert quoting.yaml(password).count("\n") == 0
    if "\x00" not in password:
        assert shlex.split(quoting.shell(password)) == [password]


def _urls(site: configs.Site) -> list[str]:
    return [configs.db_url(site, "nova", "nova", "nova_db_password"), configs.transport_url(site)]


@pytest.mark.parametrize("password", HOSTILE)
def test_urls_keep_host_and_port_and_decode_to_the_password(password):
    for url in _urls(site_with(password)):
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) in {("10.9.0.5", 3306), ("10.9.0.5", 5672)}
        assert unquote(parts.password) == password
        assert not parts.fragment


def test_urls_parsed_by_sqlalchemy_and_oslo_messaging_give_back_every_password():
    urls = [_urls(site_with(pw)) for pw in HOSTILE]
    parsed = in_openstack_venv("""
        import json, sys
        from oslo_config import cfg
        from oslo_messaging import TransportURL
        from sqlalchemy.engine import make_url
        out = []
        for db, mq in json.load(sys.stdin):
            d, m = make_url(db), TransportURL.parse(cfg.ConfigOpts(), mq).hosts[0]
            out.append([d.password, d.host, d.port, d.database, m.password, m.hostname, m.port])
        print(json.dumps(out))
    """, urls)
    for password, got in zip(HOSTILE, parsed, strict=True):
        assert got == [password, "10.9.0.5", 3306, "nova", password, "10.9.0.5", 5672]


def test_oslo_config_reads_back_every_password_from_rendered_files(tmp_path):
    cases = []
    for i, password in enumerate(HOSTILE):
        site = site_with(password)
        path = tmp_path / f"nova-{i}.conf"
        path.write_text(configs.nova_conf(site))
        cases.append(str(path))
    got = in_openstack_venv("""
        import json, sys
        from oslo_config import cfg
        out = []
        for path in json.load(sys.stdin):
            conf = cfg.ConfigOpts()
            conf.register_opt(cfg.StrOpt("connection"), group="database")
            conf.register_opt(cfg.StrOpt("password"), group="keystone_authtoken")
            conf.register_opt(cfg.StrOpt("metadata_proxy_shared_secret"), group="neutron")
            conf.register_opt(cfg.StrOpt("transport_url"))
            conf(["--config-file", path], project="quoting", default_config_files=[])
            out.append([conf.database.connection, conf.keystone_authtoken.password,
                        conf.neutron.metadata_proxy_shared_secret, conf.transport_url])
        print(json.dumps(out))
    """, cases)
    for password, (connection, user_password, secret, transport) in zip(HOSTILE, got, strict=True):
        site = site_with(password)
        assert user_password == secret == password
        assert connection == configs.db_url(site, "nova", "nova", "nova_db_password")
        assert transport == configs.transport_url(site)


@pytest.mark.parametrize("password", LINE_BREAKS)
def test_values_that_oslo_config_cannot_carry_are_refused(password):
    with pytest.raises(ValueError, match="line breaks or NUL"):
        quoting.oslo_ini(password)
    with pytest.raises(settings.SettingsError, match="line breaks or NUL"):
        settings.validate("admin_password", password + "x" * 12)


def test_config_set_of_a_hostile_password_is_allowed():
    assert settings.validate("admin_password", "$(id)'\"#:@/ x") == (
        "admin_password", "$(id)'\"#:@/ x")


@pytest.mark.skipif(shutil.which("erl") is None, reason="needs Erlang (RabbitMQ's erl)")
def test_rabbitmq_advanced_config_read_by_erlang_gives_back_every_password(tmp_path):
    for i, password in enumerate(HOSTILE):
        path = tmp_path / f"advanced-{i}.config"
        path.write_text(configs.rabbitmq_advanced_config(site_with(password)))
    script = ('[begin {ok, [[{rabbit, Env}]]} = file:consult(F), '
              'io:format("~s~n", [base64:encode(proplists:get_value(default_pass, Env))]) end '
              '|| F <- lists:sort(filelib:wildcard("' + str(tmp_path) + '/advanced-*.config"))], '
              'init:stop().')
    proc = subprocess.run(["erl", "-noshell", "-eval", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    files = sorted(tmp_path.glob("advanced-*.config"), key=lambda p: p.name)
    by_file = dict(zip([p.name for p in files], proc.stdout.split(), strict=True))
    for i, password in enumerate(HOSTILE):
        assert base64.b64decode(by_file[f"advanced-{i}.config"]).decode() == password


def test_a_slash_in_the_rabbitmq_password_is_refused_and_what_oslo_messaging_breaks_on():
    with pytest.raises(settings.SettingsError, match="oslo.messaging"):
        settings.validate("rabbit_password", "long-enough/password")
    # oslo.messaging's RabbitMQ driver re-quotes the password keeping "/", and kombu then reads
    # it as the URL's path: any other hostile password survives the round trip.
    allowed = [pw for pw in HOSTILE if "/" not in pw]
    urls = [configs.transport_url(site_with(pw)) for pw in (*allowed, "a/b")]
    got = in_openstack_venv("""
        import json, sys
        from kombu.utils.url import url_to_parts
        from oslo_config import cfg
        from oslo_messaging import TransportURL
        from oslo_messaging._drivers.impl_rabbit import Connection
        out = []
        for raw in json.load(sys.stdin):
            url = TransportURL.parse(cfg.ConfigOpts(), raw)
            kombu = Connection._transform_transport_url(None, url, url.hosts[0])
            try:
                out.append(url_to_parts(kombu).password)
            except ValueError as exc:
                out.append(f"ValueError: {exc}")
        print(json.dumps(out))
    """, urls)
    assert got[:-1] == allowed
    assert got[-1] != "a/b"
