"""Run one unit on this machine. See base.Runtime for the interface the agent uses."""
from stackfleet.runtime.base import Runtime, UnitStatus
from stackfleet.runtime.fence import Fence, read_fence, write_fence
from stackfleet.runtime.process import ProcessRuntime
from stackfleet.runtime.spec import ServiceSpec

__all__ = ["Fence", "ProcessRuntime", "Runtime", "ServiceSpec", "UnitStatus", "read_fence",
           "write_fence"]
