"""The one exception type that the CLI turns into a clean message and exit code 2, and the
warnings it shows as one plain line."""


class PmbnnError(ValueError):
    """A problem with the user's input: the message names it and says how to fix it.

    A ValueError, so that code calling pmbnn can catch it as the standard type.
    """


class MissingExtraError(PmbnnError, ImportError):
    """An optional dependency (an extra such as ``pmbnn[jax]``) is needed and not installed."""


class PmbnnWarning(UserWarning):
    """Something the user should know that does not stop the command."""


class DataWarning(PmbnnWarning):
    """Something about the data the user should know that does not stop the fit."""


class OutputWarning(PmbnnWarning):
    """Something about where the output goes (a file system without locks)."""
