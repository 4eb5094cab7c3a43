"""The robustness campaign: nothing a client, a guest or a fault does can lock, crash or bloat.

``python -m robustness`` runs it (``--long`` for the long version, ``--only AREA``
for some areas); ``tests/test_robustness_campaign.py`` runs the short version
inside the normal test command. Eight areas, one module each:

* :mod:`robustness.qmp_fuzz`: generated QMP and HMP input against a running server;
* :mod:`robustness.guest_fuzz`: a hostile guest's RTAS calls and hypercalls;
* :mod:`robustness.interleave`: host operations, resets, stops, migrations and guest
  steps in generated orders (QEMU 7.2's crashing sequences included);
* :mod:`robustness.migration_faults`: broken streams and mismatched targets;
* :mod:`robustness.process`: closed outputs, full pipes and terminating signals;
* :mod:`robustness.bounds`: the bounds on messages, nesting, events, queues and
  memory, and the long soak;
* :mod:`robustness.atomic`: host operations that fail at each step leave nothing behind;
* :mod:`robustness.security`: where listeners bind and what client input may reach.

Each area reports what it tried, what held and every failure with the input that
caused it (:mod:`robustness.report`); comparisons with real QEMU 7.2 run when
qemu-system-ppc64 is installed (:mod:`robustness.live`). It is the top layer: it
drives the whole program and nothing imports it.
"""
