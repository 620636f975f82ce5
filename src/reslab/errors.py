"""The one error type a user sees.

Anything raised as :class:`ReslabError` is a problem with the user's input (a model
name, a file, an option).  The CLI prints it as one line and exits with code 2; every
other exception is a bug and keeps its traceback.
"""


class ReslabError(ValueError):
    """Bad input: a name, option, file or value that reslab cannot use."""


class DataFormatError(ReslabError):
    """A data file is malformed: wrong magic, truncated, inconsistent, or unsafe."""


class OutputError(ReslabError, OSError):
    """An output file could not be written (read-only folder, disk full, no permission).

    Also an :class:`OSError` (with its ``errno``), so a best-effort writer that catches
    ``OSError`` (a cache) still ignores it, while the CLI prints it as one line.
    """

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno

    def __str__(self) -> str:
        return str(self.args[0])


def one_line(err: BaseException, limit: int = 160) -> str:
    """An exception's text squeezed onto one short line (the CLI prints errors as one line)."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
