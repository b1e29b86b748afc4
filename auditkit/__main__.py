"""``python -m auditkit``: the command line, also as ``torchrun ... -m auditkit COMMAND``."""

import sys

from auditkit import distributed
from auditkit.cli import run

if __name__ == "__main__":
    code = run()
    distributed.shutdown()
    sys.exit(code)
