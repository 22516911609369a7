"""The one exception type for bad input: its message is a single sentence naming file, row, field or option."""


class InputError(ValueError):
    """Bad user input found before long work starts; the CLI prints the message alone and exits with 2."""
