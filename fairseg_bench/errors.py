"""The one exception type for mistakes in the user's input."""


class UserError(ValueError):
    """Bad input from the user (file, option, config): the CLI prints it as one line and exits 2."""
