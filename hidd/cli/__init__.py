"""Command-line entry points (installed as hidd-train, hidd-reconstruct)."""
from __future__ import annotations

import sys
from contextlib import contextmanager

from hidd.checkpoint import CheckpointError
from hidd.config import ConfigError
from hidd.imageio import ImageError

# Problems of the user's input: reported as one line, never a traceback.
USER_ERRORS = (ConfigError, CheckpointError, ImageError, FileNotFoundError, ValueError)


@contextmanager
def one_line_errors(program: str):
    try:
        yield
    except USER_ERRORS as e:
        print(f"{program}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        sys.exit(130)
