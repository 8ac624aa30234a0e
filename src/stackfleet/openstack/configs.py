"""Renders the OpenStack services' config files from the settings and this machine's facts (pure).

Every file is a function of a `Site`, so a moved controller or a changed setting is a re-render,
never an edit. All services bind to, or talk to, management addresses given here.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackfleet.openstack import libvirtd, quoting
from stackfleet.openstack.services import Service, port
from stackfleet.openstack.settings import Settings, parse
from stackfleet.openstack.shared_data import SharedLayout

RABBIT_USER = "openstack"
# The host name of the controller's Nova and Neutron services, whichever machine runs the role:
# one service record each, taken over by the next machine, instead of a `down` one per machine.
CONTROLLER_HOST = "controller"
VIRT_DRIVERS = {
    # The fake driver boots "servers" without a hypervisor; its WithoutFakeNodes flavour keeps a
    # stable node identity in state_path, so it survives restarts (plain FakeDriver does not).
    "fake": "fake.FakeDriverWithoutFakeNodes",
    # The real one: this machine's libvirtd (libvirtd.py), QEMU with the virt_type setting.
    "libvirt": "libvirt.LibvirtDriver",
}
# Seconds an RPC service may take to stop; the runner kills what is left after 10 s.
GRACEFUL_SHUTDOWN = 5
Sections = Mapping[str, Mapping[str, object]]


@dataclass(frozen=True)
class Site:
    """What one machine's configs depend on."""
    settings: Settings
    controller: str        # the controller's address: the VIP, or its machine's own address
    address: str           # where this machine's services bind (the VIP, on the controller)
    host: str              # this machine's name for Nova and Neutron (CONTROLLER_HOST on it)
    shared: SharedLayout
    state: Path            # this machine's local state dir for the role
    venv: Path             # the OpenStack venv (paste files live in VENV/etc)
    # This machine's address on the tunnel network (VXLAN's local_ip); network and compute only.
    tunnel_ip: str = ""


def render_ini(sections: Sections) -> str:
    """oslo.config's INI format; every value goes through quoting.oslo_ini."""
    lines: list[str] = []
    for name, options in sections.items():
        lines.append(f"[{name}]")
        for key, value in options.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            lines.append(f"{key} = {quoting.oslo_ini(str(value))}")
        lines.append("")
    return "\n".join(lines)


def url(site: Site, process: str, path: str = "") -> str:
    return f"http://{site.controller}:{port(process)}{path}"


def _userinfo(user: str, password: str) -> str:
    return f"{quoting.url_userinfo(user)}:{quoting.url_userinfo(password)}"


def db_url(site: Site, database: str, user: str, password_key: str) -> str:
    userinfo = _userinfo(user, site.settings.password(password_key))
    return (f"mysql+pymysql://{userinfo}@{site.controller}:{port('mariadb')}/{database}"
            "?charset=utf8")


def transport_url(site: Site) -> str:
    userinfo = _userinfo(RABBIT_USER, site.settings.password("rabbit_password"))
    return f"rabbit://{userinfo}@{site.controller}:{port('rabbitmq')}/"


def _service_auth(site: Site, user: str) -> dict[str, object]:
    """Credentials of a service user, as every keystoneauth-loading section takes them."""
    return {
        "auth_type": "password", "auth_url": url(site, "keystone", "/v3"),
        "project_domain_name": "Default", "user_domain_name": "Default", "project_name": "service",
        "username": user, "password": site.settings.password(f"{user}_password"),
        "region_name": site.settings.region,
    }


def _authtoken(site: Site, user: str) -> dict[str, object]:
    return {"www_authenticate_uri": url(site, "keystone"),
            "memcached_servers": f"{site.controller}:{port('memcached')}",
            **_service_auth(site, user)}


def _locks(site: Site, service: str) -> dict[str, object]:
    return {"lock_path": site.state / service / "lock"}


def keystone_conf(site: Site) -> str:
    keys = site.shared.keystone_keys
    return render_ini({
        "DEFAULT": {"debug": False},
        "database": {"connection": db_url(site, "keystone", "keystone", "keystone_db_password")},
        "token": {"provider": "fernet"},
        # The keys sit with the data so tokens and encrypted credentials survive a failover.
        "fernet_tokens": {"key_repository": keys / "fernet-keys"},
        "credential": {"key_repository": keys / "credential-keys"},
        "cache": {"enabled": True, "backend": "dogpile.cache.pymemcache",
                  "memcache_servers": f"{site.controller}:{port('memcached')}"},
    })


def glance_api_conf(site: Site) -> str:
    return render_ini({
        "DEFAULT": {"enabled_backends": "fs:file", "bind_host": site.address},
        "database": {"connection": db_url(site, "glance", "glance", "glance_db_password")},
        "glance_store": {"default_backend": "fs"},
        "fs": {"filesystem_store_datadir": site.shared.glance_images},
        "os_glance_staging_store": {"filesystem_store_datadir": site.state / "glance" / "staging"},
        "os_glance_tasks_store": {"filesystem_store_datadir": site.state / "glance" / "tasks"},
        "keystone_authtoken": _authtoken(site, "glance"),
        "paste_deploy": {"flavor": "keystone",
                         "config_file": site.venv / "etc/glance/glance-api-paste.ini"},
        "oslo_concurrency": _locks(site, "glance"),
    })


def placement_conf(site: Site) -> str:
    return render_ini({
        "placement_database": {
            "connection": db_url(site, "placement", "placement", "placement_db_password")},
        "api": {"auth_strategy": "keystone"},
        "keystone_authtoken": _authtoken(site, "placement"),
    })


def _nova_common(site: Site) -> dict[str, dict[str, object]]:
    """What nova's controller services and nova-compute share."""
    return {
        "DEFAULT": {"transport_url": transport_url(site), "my_ip": site.address, "host": site.host,
                    "state_path": site.state / "nova",
                    "graceful_shutdown_timeout": GRACEFUL_SHUTDOWN},
        "placement": _service_auth(site, "placement"),
        "neutron": {**_service_auth(site, "neutron"), "service_metadata_proxy": True,
                    "metadata_proxy_shared_secret": site.settings.password("metadata_secret")},
        "glance": {"api_servers": url(site, "glance")},
        "service_user": {"send_service_user_token": True, **_service_auth(site, "nova")},
        "oslo_concurrency": _locks(site, "nova"),
        "oslo_messaging_notifications": {"driver": "noop"},
        "vnc": {"enabled": False},
    }


def nova_conf(site: Site) -> str:
    """nova-api, nova-metadata, nova-conductor and nova-scheduler on the controller."""
    sections = _nova_common(site)
    sections["DEFAULT"].update({"osapi_compute_listen": site.address,
                                "metadata_listen": site.address})
    sections.update({
        "api": {"auth_strategy": "keystone"},
        "wsgi": {"api_paste_config": site.venv / "etc/nova/api-paste.ini"},
        "database": {"connection": db_url(site, "nova", "nova", "nova_db_password")},
        "api_database": {"connection": db_url(site, "nova_api", "nova", "nova_db_password")},
        "keystone_authtoken": _authtoken(site, "nova"),
        "conductor": {"workers": 1},
        "scheduler": {"workers": 1, "discover_hosts_in_cells_interval": 30},
    })
    return render_ini(sections)


def virt_driver() -> str:
    """The compute role's virt driver: libvirt, or `fake` by $STACKFLEET_VIRT_DRIVER (see compute.py)."""
    return os.environ.get("STACKFLEET_VIRT_DRIVER", "libvirt")


def nova_compute_conf(site: Site, virt_driver: str = "libvirt") -> str:
    """nova-compute's own file: no [database] sections, it reaches the DB through the conductor.
    `virt_driver` "fake" boots nothing, for fast tests of the control plane only."""
    if virt_driver not in VIRT_DRIVERS:
        raise ValueError(f"virt driver {virt_driver!r}: choose one of {', '.join(VIRT_DRIVERS)}")
    fake = virt_driver == "fake"
    sections = _nova_common(site)
    sections["DEFAULT"].update({
        "compute_driver": VIRT_DRIVERS[virt_driver],
        # Shared, so that another compute machine can evacuate with the disks in place.
        "instances_path": site.shared.nova_instances,
        # The fake driver plugs no VIFs, so no vif-plugged event would ever arrive.
        "vif_plugging_is_fatal": not fake,
        "vif_plugging_timeout": 0 if fake else 300,
        # A restarted compute role (its guests died with it) boots its servers again.
        "resume_guests_state_on_host_boot": not fake,
    })
    if not fake:
        sections.update(libvirt_sections(site))
    return render_ini(sections)


def libvirt_sections(site: Site) -> dict[str, dict[str, object]]:
    """nova-compute on this machine's own libvirtd (see libvirtd.py), guests plugged into our OVS."""
    virt_type = site.settings.virt_type
    libvirt: dict[str, object] = {
        "virt_type": virt_type,
        "connection_uri": libvirtd.connection_uri(libvirtd.state_root(site.state)),
    }
    if virt_type == "qemu":
        # TCG: QEMU's default CPU model (host-model asks for what emulation may not offer), and a
        # 32 MiB translation cache instead of 1 GiB (DESIGN.md: 220 -> 207 MB per guest).
        libvirt.update({"cpu_mode": "none", "tb_cache_size": 32})
    return {
        "libvirt": libvirt,
        # os-vif makes br-int's port record through this machine's ovsdb, not tcp:127.0.0.1:6640.
        "os_vif_ovs": {"ovsdb_connection": ovs_db(site)},
        # nova-compute runs as root: privsep helpers start directly, not through sudo.
        **{name: {"helper_command": site.venv / "bin/privsep-helper"}
           for name in ("nova_sys_admin", "vif_plug_ovs_privileged",
                        "vif_plug_linux_bridge_privileged")},
    }


def neutron_conf(site: Site) -> str:
    dvr = site.settings.ha_mode == "DVR"
    return render_ini({
        "DEFAULT": {
            "core_plugin": "ml2", "service_plugins": "router", "auth_strategy": "keystone",
            "transport_url": transport_url(site), "host": site.host,
            "state_path": site.state / "neutron", "bind_host": site.address,
            "api_paste_config": site.venv / "etc/neutron/api-paste.ini",
            "allow_overlapping_ips": True,
            "notify_nova_on_port_status_changes": True,
            "notify_nova_on_port_data_changes": True,
            # HA_MODE is one setting; these two options follow from it and nothing else. Routers
            # are HA in both modes: with DVR their SNAT is a keepalived pair on the network
            # machines (HA SNAT), so that SNAT survives a network machine too.
            "router_distributed": dvr, "l3_ha": True,
            "dhcp_agents_per_network": 2,
            "graceful_shutdown_timeout": GRACEFUL_SHUTDOWN,
        },
        "database": {"connection": db_url(site, "neutron", "neutron", "neutron_db_password")},
        "keystone_authtoken": _authtoken(site, "neutron"),
        "nova": _service_auth(site, "nova"),
        "oslo_concurrency": _locks(site, "neutron"),
        "agent": {"root_helper": "", "report_interval": 10},
        **privsep_sections(site),
    })


def neutron_agent_conf(site: Site) -> str:
    """neutron.conf of an agent machine: the message bus and this host, but no database."""
    return render_ini({
        "DEFAULT": {"core_plugin": "ml2", "transport_url": transport_url(site), "host": site.host,
                    "state_path": site.state / "neutron",
                    "graceful_shutdown_timeout": GRACEFUL_SHUTDOWN},
        "oslo_concurrency": _locks(site, "neutron"),
        "agent": {"root_helper": "", "report_interval": 10},
        **privsep_sections(site),
    })


MECHANISM_DRIVERS = "openvswitch,l2population"


def server_ml2_conf(site: Site) -> str:
    """The Neutron server's: every port is bound by the openvswitch driver to a live agent.
    VXLAN's 50 bytes come off the 1500 of the tunnel network: tenant networks get MTU 1450,
    which the DHCP agent hands out."""
    return render_ini({
        "ml2": {"type_drivers": "flat,vxlan", "tenant_network_types": "vxlan",
                "mechanism_drivers": MECHANISM_DRIVERS,
                "extension_drivers": "port_security", "path_mtu": 1500},
        "ml2_type_flat": {"flat_networks": "external"},
        "ml2_type_vxlan": {"vni_ranges": "1:1000"},
        "securitygroup": {"firewall_driver": "openvswitch", "enable_security_group": True},
    })


# Neutron's agents run as root here, so each privsep context starts its helper directly
# instead of through sudo, which a container or a lab machine may not have.
PRIVSEP_CONTEXTS = ("privsep", "privsep_dhcp_release", "privsep_ovs_vsctl", "privsep_namespace",
                    "privsep_conntrack", "privsep_link")


def privsep_sections(site: Site) -> dict[str, dict[str, object]]:
    return {name: {"helper_command": site.venv / "bin/privsep-helper"} for name in PRIVSEP_CONTEXTS}


def l3_agent_mode(ha_mode: str, role: str) -> str:
    """DVR: SNAT on network machines, distributed routing on compute; L3_HA: legacy VRRP routers."""
    if ha_mode == "DVR":
        return "dvr_snat" if role == "network" else "dvr"
    return "legacy"


def ovs_db(site: Site) -> str:
    return f"unix:{site.state / 'ovs' / 'db.sock'}"


def has_external_bridge(ha_mode: str, role: str) -> bool:
    """br-ex on network machines; on compute machines too with DVR (floating IPs leave there)."""
    return role == "network" or ha_mode == "DVR"


def openvswitch_agent_ini(site: Site, role: str) -> str:
    mappings = {"bridge_mappings": "external:br-ex"} if has_external_bridge(
        site.settings.ha_mode, role) else {}
    return render_ini({
        "ovs": {"datapath_type": "netdev", "integration_bridge": "br-int",
                "tunnel_bridge": "br-tun", "local_ip": site.tunnel_ip or site.address,
                "ovsdb_connection": ovs_db(site), "of_listen_address": "127.0.0.1", **mappings},
        "agent": {"tunnel_types": "vxlan", "l2_population": True,
                  "enable_distributed_routing": site.settings.ha_mode == "DVR"},
        "securitygroup": {"firewall_driver": "openvswitch"},
    })


def l3_agent_ini(site: Site, role: str) -> str:
    return render_ini({
        "DEFAULT": {"interface_driver": "openvswitch", "ovs_use_veth": True,
                    "agent_mode": l3_agent_mode(site.settings.ha_mode, role),
                    "ha_confs_path": site.state / "neutron" / "ha_confs"},
        # netdev: Neutron turns checksum offload off on its veths (with ethtool), which the
        # userspace datapath needs for TCP.
        "ovs": {"ovsdb_connection": ovs_db(site), "datapath_type": "netdev"},
    })


# With the userspace datapath an OVS internal port is a tap that ovs-vswitchd drives by name in its
# own namespace; moved into a router or DHCP namespace it breaks. A veth pair works (ovs_use_veth).
def dhcp_agent_ini(site: Site) -> str:
    return render_ini({
        "DEFAULT": {"interface_driver": "openvswitch", "ovs_use_veth": True,
                    "dhcp_driver": "neutron.agent.linux.dhcp.Dnsmasq",
                    "enable_isolated_metadata": True,
                    "dnsmasq_config_file": site.state / "etc" / "neutron" / "dnsmasq.conf"},
        "ovs": {"ovsdb_connection": ovs_db(site), "datapath_type": "netdev"},
    })


def dnsmasq_conf(site: Site) -> str:
    # dnsmasq drops to user nobody by default, and on these machines it then received every
    # DHCP request and answered none (a dnsmasq kept as root answered at once).
    return "user=root\n"


def metadata_agent_ini(site: Site) -> str:
    return render_ini({
        "DEFAULT": {"nova_metadata_host": site.controller,
                    "nova_metadata_port": port("nova-metadata"),
                    "metadata_proxy_shared_secret": site.settings.password("metadata_secret"),
                    "metadata_proxy_socket": site.state / "neutron" / "metadata_proxy"},
    })


def horizon_dashboard_json(site: Site) -> str:
    """The dashboard's per-site values, read by dashboard_settings.py at every start. Nothing here
    reaches a compressed template, so a new address or key keeps the install's offline
    compression valid. JSON carries any value exactly."""
    dvr = site.settings.ha_mode == "DVR"
    return json.dumps({
        "secret_key": site.settings.password("horizon_secret_key"),
        "keystone_url": url(site, "keystone", "/v3"),
        "memcached": f"{site.controller}:{port('memcached')}",
        # HA_MODE decides which kind of router the create form offers, as for Neutron itself.
        "neutron_network": {"enable_router": True, "enable_ha_router": True,
                            "enable_distributed_router": dvr},
    }, indent=2) + "\n"


def rabbitmq_conf(site: Site) -> str:
    return "default_vhost = /\nloopback_users = none\n"


def rabbitmq_advanced_config(site: Site) -> str:
    """RabbitMQ's user comes from the settings on every start (see controller.py), in Erlang terms:
    rabbitmq.conf cannot carry a `#` in a value."""
    user = quoting.erlang_binary(RABBIT_USER)
    password = quoting.erlang_binary(site.settings.password("rabbit_password"))
    return f"[{{rabbit, [{{default_user, {user}}}, {{default_pass, {password}}}]}}].\n"


def admin_credentials(settings: Settings, controller: str) -> dict[str, str]:
    """The admin's OS_* variables: what openrc exports and clouds.yaml spells its own way."""
    return {
        "OS_AUTH_URL": f"http://{controller}:{port('keystone')}/v3",
        "OS_USERNAME": settings.admin_user,
        "OS_PASSWORD": settings.password("admin_password"),
        "OS_PROJECT_NAME": settings.admin_project,
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_REGION_NAME": settings.region,
        "OS_IDENTITY_API_VERSION": "3",
    }


def clouds_yaml(settings: Settings, controller: str, cloud: str = "stackfleet") -> str:
    env = admin_credentials(settings, controller)
    q = quoting.yaml
    return "\n".join([
        "clouds:",
        f"  {q(cloud)}:",
        "    auth:",
        f"      auth_url: {q(env['OS_AUTH_URL'])}",
        f"      username: {q(env['OS_USERNAME'])}",
        f"      password: {q(env['OS_PASSWORD'])}",
        f"      project_name: {q(env['OS_PROJECT_NAME'])}",
        f"      user_domain_name: {q(env['OS_USER_DOMAIN_NAME'])}",
        f"      project_domain_name: {q(env['OS_PROJECT_DOMAIN_NAME'])}",
        f"    region_name: {q(env['OS_REGION_NAME'])}",
        f"    identity_api_version: {env['OS_IDENTITY_API_VERSION']}",
        "",
    ])


def openrc(settings: Settings, controller: str) -> str:
    return "".join(f"export {name}={quoting.shell(value)}\n"
                   for name, value in admin_credentials(settings, controller).items())


def render_service(site: Site, service: Service) -> dict[str, str]:
    """A service's config files (path under STATE/etc -> text), by the renderers its entry names."""
    renderers = globals()
    return {f.path: renderers[f.renderer](site) for f in service.configs}


def site_to_dict(site: Site) -> dict[str, object]:
    """A Site as JSON-able data, for the helper processes that run inside the OpenStack venv."""
    s = site.settings
    raw = {"region": s.region, "ha_mode": s.ha_mode, "release": s.release,
           "admin_project": s.admin_project, "admin_user": s.admin_user,
           "virt_type": s.virt_type, "tunnel_interface": s.tunnel_interface,
           "external_interface": s.external_interface, "vip": s.vip, **s.passwords}
    return {"settings": raw, "controller": site.controller, "address": site.address,
            "host": site.host, "shared": str(site.shared.root), "state": str(site.state),
            "venv": str(site.venv), "tunnel_ip": site.tunnel_ip}


def site_from_dict(data: Mapping[str, Any]) -> Site:
    return Site(settings=parse(data["settings"]), controller=str(data["controller"]),
                address=str(data["address"]), host=str(data["host"]),
                shared=SharedLayout(Path(str(data["shared"]))), state=Path(str(data["state"])),
                venv=Path(str(data["venv"])), tunnel_ip=str(data.get("tunnel_ip", "")))
