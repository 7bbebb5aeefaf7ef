"""The error type for bad input: reported as one line by the CLI, before expensive work starts."""


class UserError(ValueError):
    """Bad input (config, file, folder, name). The message is one line naming what is wrong."""
