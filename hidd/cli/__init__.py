"""Command-line entry points (installed as hidd-train, hidd-reconstruct)."""
from __future__ import annotations

import sys
from contextlib import contextmanager

from hidd.checkpoint import CheckpointError
from hidd.config import ConfigError
from hidd.imageio import ImageError
from hidd.text import printable

# Problems of the user's input or environment (a folder that cannot be written, a full disk):
# reported as one line with exit status 2, never a traceback.
USER_ERRORS = (ConfigError, CheckpointError, ImageError, OSError, ValueError)


@contextmanager
def one_line_errors(program: str):
    try:
        yield
    except USER_ERRORS as e:
        print(f"{program}: error: {printable(str(e))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        sys.exit(130)
