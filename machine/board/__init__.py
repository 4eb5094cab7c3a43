"""The board: the pseries machine built from a setup (slots, connectors, QOM, device tree, reset).

``build`` creates a machine from its configuration in ``qemu_init``'s order;
``pseries`` wires the sPAPR devices, the scheduler and the guest together. Events
and state leave the board through listeners and queries; it knows nothing of the
monitor, the command line or migration.
"""
