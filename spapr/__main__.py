"""``python -m spapr``: the emulator's command line.

The command line lives at the edge of the system, in ``machine.cli.main``; this entry
point only hands over to it. It is resolved at run time because the ``spapr``
library itself must not depend on ``machine`` (fdt <- rtas <- spapr <- machine).
"""

import importlib
import sys

if __name__ == "__main__":
    sys.exit(importlib.import_module("machine.cli.main").main())
