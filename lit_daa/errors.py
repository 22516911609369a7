"""The one exception type for bad input: its message is a single sentence naming file, row, field or option."""


class InputError(ValueError):
    """Bad user input found before long work starts; the CLI prints the message alone and exits with 2."""


def input_error_within(err: BaseException) -> InputError | None:
    """The InputError that `err` is, or that caused it (jsonargparse wraps a constructor's InputError, e.g. a LoRA
    rank of 0 under `model.lora: LoRA | None`, in its own ValueError listing every type it tried); else None."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, InputError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
