"""A property-based conformance kit for pseries (sPAPR) CPU hotplug, against QEMU 7.2.

For people who write DLPAR guest code, DR connector implementations or
management software, and want hypothesis to hunt for the sequences that break
them. The kit is the top layer of this project: it may use every layer below,
and nothing imports it.

* :mod:`conformance.strategies` -- hypothesis strategies: machine command lines
  (valid per accelerator, and invalid with QEMU's exact error), core device_add
  arguments (valid, and each kind of invalid), host operations, RTAS calls
  (well-formed and hostile), the reference guest's behaviours.
* :class:`HotplugMachine` -- a hypothesis state machine over one emulated
  machine, checking the protocol's invariants after every step; subclass it to
  plug in your :class:`Guest` or your :class:`Connector`.
* :class:`ConnectorMachine` -- one connector implementation against QEMU 7.2's,
  call for call.
* :class:`QemuSession` / :class:`EmulatorSession` -- QMP with real
  ``qemu-system-ppc64`` and with this emulator; :mod:`conformance.campaign` runs
  generated QMP sequences against both (``python -m conformance qemu``).
* :mod:`conformance.plugin` -- a pytest plugin (fixtures and the ``qemu`` marker).

See docs/conformance.md. The API may change before 1.0 (README, "API stability").
"""

from conformance.config import ColdplugCore, InvalidMachine, MachineArgs, NumaLayout
from conformance.connector_machine import ConnectorMachine
from conformance.connectors import CheckedConnector, Discrepancy, EarlyRelease, install_connectors
from conformance.guests import ReferenceGuest, idle_program, online_hwids, reference_guest
from conformance.protocols import Connector, ConnectorFactory, Guest, GuestProgram
from conformance.qmp import (
    EmulatorSession,
    Exchange,
    QemuExited,
    QemuSession,
    Transcript,
    normalize,
    qemu_binary,
)
from conformance.statemachine import HostModel, HotplugMachine, kit_settings
from conformance.strategies import (
    P8E_CLASSIC,
    P9_CLASSIC,
    CoreArgs,
    GuestBehaviour,
    Refusal,
    RtasCall,
)

__version__ = "0.1.0"

__all__ = [
    "P8E_CLASSIC",
    "P9_CLASSIC",
    "CheckedConnector",
    "ColdplugCore",
    "Connector",
    "ConnectorFactory",
    "ConnectorMachine",
    "CoreArgs",
    "Discrepancy",
    "EarlyRelease",
    "EmulatorSession",
    "Exchange",
    "Guest",
    "GuestBehaviour",
    "GuestProgram",
    "HostModel",
    "HotplugMachine",
    "InvalidMachine",
    "MachineArgs",
    "NumaLayout",
    "QemuExited",
    "QemuSession",
    "ReferenceGuest",
    "Refusal",
    "RtasCall",
    "Transcript",
    "__version__",
    "idle_program",
    "install_connectors",
    "kit_settings",
    "normalize",
    "online_hwids",
    "qemu_binary",
    "reference_guest",
]
