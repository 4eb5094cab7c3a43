"""The configuration: a qemu-system-ppc64 command line parsed and checked into a machine setup.

``cmdline`` reads the options in QEMU's order into a ``MachineConfig``; ``startup``
interprets it as ``qemu_init`` does (machine version, ``-smp``, ``-cpu``, ``-numa``,
``-global``, caps, accelerator, board checks) into a ``MachineSetup``. Knows nothing
of a running machine.
"""
