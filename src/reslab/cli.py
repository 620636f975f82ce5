"""The ``reslab`` command line.

Each sub-command lives in its own module that defines ``add_parser(subparsers)``;
the parser it adds sets ``func`` to the function that runs it.  Errors a user can fix
(:class:`~reslab.errors.ReslabError`) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from reslab.errors import ReslabError
from reslab.logs import cli_handler

# Sub-commands listed first in `reslab --help` ("experiments" adds one command per experiment);
# any other module in reslab.commands that defines add_parser() follows in alphabetical order.
COMMAND_ORDER = [
    "reproduce", "experiments", "report",
    "train", "eval", "weights", "info", "data",
]


def _command_modules() -> list[str]:
    import pkgutil

    import reslab.commands

    found = {m.name for m in pkgutil.iter_modules(reslab.commands.__path__) if not m.name.startswith("_")}
    ordered = [n for n in COMMAND_ORDER if n in found] + sorted(found - set(COMMAND_ORDER))
    return [f"reslab.commands.{n}" for n in ordered]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 (no usage dump)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="reslab",
        description="Residual networks and the depth problems they solve.",
    )
    from reslab import __version__

    parser.add_argument("--version", action="version", version=f"reslab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _command_modules():
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help()  # a bare `reslab` asks for the help, like `reslab --help`
        return 0
    args = parser.parse_args(argv)
    try:
        with cli_handler():  # the library logs; a command shows its INFO records on stderr
            result = args.func(args)
    except ReslabError as err:
        print(f"reslab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"reslab {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `reslab weights list | head`: the reader left; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        if err.errno not in _USER_ERRNOS:
            raise
        print(f"reslab {args.command}: error: {_os_error_line(err)}", file=sys.stderr)
        return 2
    return int(result or 0)


def _user_errnos() -> frozenset[int]:
    import errno

    names = ("EROFS", "ENOSPC", "EACCES", "EPERM", "EDQUOT", "EEXIST", "ENOTDIR", "EISDIR")
    return frozenset(getattr(errno, n) for n in names if hasattr(errno, n))


# Errors of the user's disk, not of reslab: a read-only or full folder, a missing permission,
# a file where a folder should be (or the reverse).
_USER_ERRNOS = _user_errnos()


def _os_error_line(err: OSError) -> str:
    """One line naming the file (when the error carries one) and the problem."""
    import errno

    where = f"{err.filename}: " if err.filename else ""
    why = err.strerror or " ".join(str(err).split())
    if err.errno in (errno.EEXIST, errno.ENOTDIR):
        why += " (a file is where a folder is needed; choose another path)"
    elif err.errno == errno.EISDIR:
        why += " (a folder is where a file is needed; choose another path)"
    return f"{where}{why}"


if __name__ == "__main__":
    raise SystemExit(main())
