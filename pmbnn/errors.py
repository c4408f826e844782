"""The one exception type that the CLI turns into a clean message and exit code 2."""


class PmbnnError(Exception):
    """A problem with the user's input: the message names it and says how to fix it."""


class DataWarning(UserWarning):
    """Something about the data the user should know that does not stop the fit."""
