"""A last-resort ML2 mechanism driver: binds servers' ports on hosts where no L2 agent runs.

Nova cannot boot a server whose port no mechanism driver binds: the binding fails and the server
goes to ERROR. The compute role runs no L2 agent (docs/openstack-notes.md). On a host with a live
Open vSwitch agent, the `openvswitch` driver (listed first) binds the port for real. Only where none
can, this one binds it, with vif_type "other": nova's fake driver accepts it, but there is no
datapath behind it, so such a server has no working network. Every such binding is logged as a
warning that says so. Registered under `neutron.ml2.mechanism_drivers` as `stackfleet_fallback`
by scripts/install-openstack; runs inside neutron-server.
"""
from __future__ import annotations

import logging

from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api

LOG = logging.getLogger(__name__)


class FallbackMechanismDriver(api.MechanismDriver):  # type: ignore[misc]  # neutron-lib: untyped
    def initialize(self) -> None:
        LOG.info("stackfleet_fallback: binds ports only where no L2 agent could")

    def bind_port(self, context: api.PortContext) -> None:
        # Servers' ports only: DHCP and router ports wait for their agents' Open vSwitch.
        if context.current.get(portbindings.VNIC_TYPE) != portbindings.VNIC_NORMAL or \
                not context.current.get("device_owner", "").startswith("compute:"):
            return
        for segment in context.segments_to_bind:
            LOG.warning(
                "stackfleet_fallback: binding port %s on host %s to segment %s (%s) WITHOUT a "
                "datapath: no Open vSwitch agent could bind it on that host",
                context.current["id"], context.host, segment[api.ID],
                segment[api.NETWORK_TYPE])
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OTHER,
                                {portbindings.CAP_PORT_FILTER: False})
            return
