"""The one error type a user sees.

Anything raised as :class:`ReslabError` is a problem with the user's input (a model
name, a file, an option).  The CLI prints it as one line and exits with code 2; every
other exception is a bug and keeps its traceback.
"""


class ReslabError(ValueError):
    """Bad input: a name, option, file or value that reslab cannot use."""


class DataFormatError(ReslabError):
    """A data file is malformed: wrong magic, truncated, inconsistent, or unsafe."""
