"""Command-line entry points (installed as hidd-train, hidd-reconstruct, hidd-train-baseline).

This module imports nothing heavy, so that a Ctrl-C while torch is still loading ends in one line too.
"""
from __future__ import annotations

import argparse
import difflib
import sys
from contextlib import contextmanager

from hidd.text import printable

# Problems of the user's input or environment (a folder that cannot be written, a full disk): reported as one line
# with exit status 2, never a traceback. hidd's own (ConfigError, CheckpointError, ImageError) are ValueErrors.
USER_ERRORS = (OSError, ValueError)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help keeps the description's own line breaks and shows each option's default (where it has a value and its
    help does not say it already)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default is False or action.default == [] or "default" in text \
                or action.default == argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with hidd's usage errors: one line (no usage block), an unknown option named first, with the option
    it is closest to ('--inptu': did you mean --input?), before any complaint about required options."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self._given: list[str] = []

    def parse_known_args(self, args=None, namespace=None):
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message):
        known = [option for action in self._actions for option in action.option_strings]
        unknown = [word.split("=", 1)[0] for word in self._given
                   if word.startswith("--") and word.split("=", 1)[0] not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            message = f"unrecognized option {unknown[0]}" + (f"; did you mean {close[0]}?" if close else "")
        self.exit(2, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")


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
