"""The one exception type that the CLI turns into a clean message and exit code 2, and the
warnings it shows as one plain line."""


class PmbnnError(Exception):
    """A problem with the user's input: the message names it and says how to fix it."""


class PmbnnWarning(UserWarning):
    """Something the user should know that does not stop the command."""


class DataWarning(PmbnnWarning):
    """Something about the data the user should know that does not stop the fit."""


class OutputWarning(PmbnnWarning):
    """Something about where the output goes (a file system without locks)."""
