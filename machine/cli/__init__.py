"""The command-line front end: ``spapr`` / ``python -m spapr`` (``main``) and the runner.

The runner serves the monitors (QMP sockets, the HMP prompt) and runs scenarios
(``scenarios/*.hmp``) on one machine; it is the top of the machine's layers.
"""
