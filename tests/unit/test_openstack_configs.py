import configparser
import dataclasses
import json
from pathlib import Path

import pytest

from stackfleet.openstack import configs, settings
from stackfleet.openstack.shared_data import SharedLayout


def make_site(ha_mode="L3_HA", controller="10.9.0.5", address="10.9.0.7"):
    raw = dict(settings.DEFAULTS, ha_mode=ha_mode)
    raw.update(settings.missing_defaults(raw))
    return configs.Site(settings=settings.parse(raw), controller=controller, address=address,
                        host="compute-01", shared=SharedLayout(Path("/shared")),
                        state=Path("/state"), venv=Path("/venv"))


def ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_render_ini_formats_booleans_and_paths():
    text = configs.render_ini({"a": {"x": True, "y": False, "p": Path("/q")}})
    assert ini(text)["a"]["x"] == "true" and ini(text)["a"]["y"] == "false"
    assert ini(text)["a"]["p"] == "/q"


def test_controller_services_point_at_the_controller_address():
    site = make_site()
    nova = ini(configs.nova_conf(site))
    assert "@10.9.0.5:3306/nova?" in nova["database"]["connection"]
    assert "@10.9.0.5:3306/nova_api?" in nova["api_database"]["connection"]
    assert nova["DEFAULT"]["transport_url"].endswith("@10.9.0.5:5672/")
    assert nova["keystone_authtoken"]["auth_url"] == "http://10.9.0.5:5000/v3"
    assert nova["DEFAULT"]["my_ip"] == "10.9.0.7"
    pw = site.settings.password("nova_db_password")
    assert f"nova:{pw}@" in nova["database"]["connection"]


def test_nova_compute_has_no_database_and_the_fake_driver_only_when_asked_for():
    compute = ini(configs.nova_compute_conf(make_site(), "fake"))
    assert not compute.has_section("database") and not compute.has_section("api_database")
    assert compute["DEFAULT"]["compute_driver"] == "fake.FakeDriverWithoutFakeNodes"
    assert compute["DEFAULT"]["host"] == "compute-01"
    assert compute["DEFAULT"]["instances_path"] == "/shared/nova/instances"
    assert compute["DEFAULT"]["state_path"] == "/state/nova"
    assert compute["DEFAULT"]["vif_plugging_is_fatal"] == "false"
    assert not compute.has_section("libvirt")


def test_libvirt_is_the_default_on_this_machines_libvirtd_and_unknown_drivers_are_refused():
    compute = ini(configs.nova_compute_conf(make_site()))
    assert compute["DEFAULT"]["compute_driver"] == "libvirt.LibvirtDriver"
    assert compute["DEFAULT"]["instances_path"] == "/shared/nova/instances"
    assert compute["DEFAULT"]["vif_plugging_is_fatal"] == "true"
    assert compute["libvirt"]["virt_type"] == "qemu"
    assert compute["libvirt"]["connection_uri"] == \
        "qemu+unix:///system?socket=/state/libvirt/run/libvirt-sock"
    assert compute["os_vif_ovs"]["ovsdb_connection"] == "unix:/state/ovs/db.sock"
    assert compute["vif_plug_ovs_privileged"]["helper_command"] == "/venv/bin/privsep-helper"
    with pytest.raises(ValueError, match="fake"):
        configs.nova_compute_conf(make_site(), "docker")


def test_virt_type_is_one_setting_kvm_on_real_hosts():
    raw = dict(settings.DEFAULTS, virt_type="KVM")
    raw.update(settings.missing_defaults(raw))
    site = configs.Site(settings=settings.parse(raw), controller="10.9.0.5", address="10.9.0.7",
                        host="compute-01", shared=SharedLayout(Path("/shared")),
                        state=Path("/state"), venv=Path("/venv"))
    libvirt = ini(configs.nova_compute_conf(site))["libvirt"]
    assert libvirt["virt_type"] == "kvm" and "tb_cache_size" not in libvirt
    with pytest.raises(settings.SettingsError, match="qemu or kvm"):
        settings.validate("virt_type", "xen")


def test_vxlan_leaves_from_the_tunnel_address_and_agents_use_the_netdev_datapath():
    site = dataclasses.replace(make_site(), tunnel_ip="172.16.0.31")
    assert ini(configs.openvswitch_agent_ini(site, "compute"))["ovs"]["local_ip"] == "172.16.0.31"
    assert ini(configs.l3_agent_ini(site, "network"))["ovs"]["datapath_type"] == "netdev"
    assert ini(configs.dhcp_agent_ini(site))["ovs"]["datapath_type"] == "netdev"
    dvr = dataclasses.replace(make_site("DVR"), tunnel_ip="172.16.0.31")
    assert ini(configs.openvswitch_agent_ini(dvr, "compute"))["ovs"]["bridge_mappings"] == \
        "external:br-ex"


@pytest.mark.parametrize("mode,distributed,ha", [("DVR", "true", "true"),
                                                 ("L3_HA", "false", "true")])
def test_neutron_router_options_follow_ha_mode(mode, distributed, ha):
    neutron = ini(configs.neutron_conf(make_site(mode)))
    assert neutron["DEFAULT"]["router_distributed"] == distributed
    assert neutron["DEFAULT"]["l3_ha"] == ha
    agent = ini(configs.openvswitch_agent_ini(make_site(mode), "compute"))
    assert agent["agent"]["enable_distributed_routing"] == distributed


@pytest.mark.parametrize("mode,role,agent_mode", [
    ("DVR", "network", "dvr_snat"), ("DVR", "compute", "dvr"),
    ("L3_HA", "network", "legacy"), ("L3_HA", "compute", "legacy")])
def test_l3_agent_mode(mode, role, agent_mode):
    assert configs.l3_agent_mode(mode, role) == agent_mode
    l3 = ini(configs.l3_agent_ini(make_site(mode), role))
    assert l3["DEFAULT"]["agent_mode"] == agent_mode


def test_ml2_binds_every_port_with_the_openvswitch_driver_only():
    ml2 = ini(configs.server_ml2_conf(make_site()))["ml2"]
    assert ml2["mechanism_drivers"] == "openvswitch,l2population"
    assert ml2["tenant_network_types"] == "vxlan" and ml2["path_mtu"] == "1500"


def test_ovs_agent_uses_the_userspace_datapath_and_own_ovsdb():
    agent = ini(configs.openvswitch_agent_ini(make_site(), "network"))
    assert agent["ovs"]["datapath_type"] == "netdev"
    assert agent["ovs"]["ovsdb_connection"] == "unix:/state/ovs/db.sock"
    assert agent["ovs"]["bridge_mappings"] == "external:br-ex"
    assert "bridge_mappings" not in ini(configs.openvswitch_agent_ini(make_site(), "compute"))["ovs"]


def test_glance_stores_images_on_shared_storage_and_keystone_keys_too():
    site = make_site()
    assert ini(configs.glance_api_conf(site))["fs"]["filesystem_store_datadir"] == \
        "/shared/glance/images"
    keystone = ini(configs.keystone_conf(site))
    assert keystone["fernet_tokens"]["key_repository"] == "/shared/keystone/fernet-keys"


def test_metadata_secret_is_the_same_on_both_sides():
    site = make_site()
    secret = site.settings.password("metadata_secret")
    assert ini(configs.nova_conf(site))["neutron"]["metadata_proxy_shared_secret"] == secret
    assert ini(configs.metadata_agent_ini(site))["DEFAULT"]["metadata_proxy_shared_secret"] == secret


def test_credentials_carry_the_generated_admin_password():
    site = make_site()
    pw = site.settings.password("admin_password")
    assert f'password: "{pw}"' in configs.clouds_yaml(site.settings, "10.9.0.5")
    rc = configs.openrc(site.settings, "10.9.0.5")
    assert f"OS_PASSWORD={pw}" in rc and "OS_AUTH_URL=http://10.9.0.5:5000/v3" in rc
    assert "adminpass" not in rc


def test_site_round_trips_through_json_data():
    site = make_site("DVR")
    assert configs.site_from_dict(configs.site_to_dict(site)) == site


def test_rabbitmq_user_comes_from_the_settings():
    site = make_site()
    text = configs.rabbitmq_advanced_config(site)
    assert f"{{default_pass, <<\"{site.settings.password('rabbit_password')}\"/utf8>>}}" in text
    assert "default_pass" not in configs.rabbitmq_conf(site)


@pytest.mark.parametrize("mode,distributed,ha", [("L3_HA", False, True), ("DVR", True, True)])
def test_horizon_gets_the_site_values_and_router_options_of_ha_mode(mode, distributed, ha):
    site = make_site(ha_mode=mode)
    data = json.loads(configs.horizon_dashboard_json(site))
    assert data["keystone_url"] == "http://10.9.0.5:5000/v3"
    assert data["memcached"] == "10.9.0.5:11211"
    assert data["secret_key"] == site.settings.password("horizon_secret_key")
    assert len(data["secret_key"]) >= 32
    assert data["neutron_network"] == {"enable_router": True, "enable_ha_router": ha,
                                       "enable_distributed_router": distributed}


def test_horizon_carries_any_secret_key_exactly():
    site = make_site()
    hostile = "k\"e\\y' {%}$(x) #ünï"
    passwords = dict(site.settings.passwords, horizon_secret_key=hostile)
    site = dataclasses.replace(site, settings=dataclasses.replace(site.settings,
                                                                  passwords=passwords))
    assert json.loads(configs.horizon_dashboard_json(site))["secret_key"] == hostile
