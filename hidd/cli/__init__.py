"""Command-line entry points (installed as hidd-train, hidd-reconstruct)."""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager

from hidd.checkpoint import CheckpointError
from hidd.config import ConfigError
from hidd.imageio import ImageError
from hidd.text import printable

# Problems of the user's input or environment (a folder that cannot be written, a full disk):
# reported as one line with exit status 2, never a traceback.
USER_ERRORS = (ConfigError, CheckpointError, ImageError, OSError, ValueError)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help keeps the description's own line breaks and shows each option's default (where it has a value and its
    help does not say it already)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default is False or action.default == [] or "default" in text \
                or action.default == argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


@contextmanager
def one_line_errors(program: str, interrupted: str = ""):
    """User errors as one line and exit status 2; Ctrl-C as one line (with `interrupted` after it: how to go on)
    and exit status 130."""
    try:
        yield
    except USER_ERRORS as e:
        print(f"{program}: error: {printable(str(e))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{program}: interrupted" + (f"; {interrupted}" if interrupted else ""), file=sys.stderr)
        sys.exit(130)
