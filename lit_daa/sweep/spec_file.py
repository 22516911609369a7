"""Reading a sweep YAML (or a fit config it names) before jsonargparse does, so that a missing file, a YAML syntax
error or a file that is not a mapping is reported in one sentence naming the file and the line.

jsonargparse reads the same files again afterwards; it would report these faults too, but as "<unicode string>",
line N under a page of usage text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lit_daa.errors import InputError


def read_yaml_mapping(path: str | Path, what: str, where: str = "") -> dict[str, Any]:
    """The mapping a YAML file holds. Errors read "{what} {path}{where} ...", e.g. "fit config a.yaml
    (fit.configs[0] of sweep config s.yaml) does not exist".

    Raises:
        InputError: the file does not exist, is not valid YAML, or does not hold a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} {path}{where} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path}{where} is a folder, not a YAML file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{what} {path}{where} cannot be read ({err})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        value = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "an unknown line"
        problem = " ".join(str(err.problem or err.context or "a syntax error").split())
        if err.context and err.context_mark is not None and err.problem:  # where the broken construct began
            start = err.context_mark
            problem = f"{problem}, {' '.join(err.context.split())} started at line {start.line + 1}"
        raise InputError(f"{what} {path}{where} is not valid YAML at {at} ({problem}); fix the file") from None
    except yaml.YAMLError as err:
        raise InputError(
            f"{what} {path}{where} is not valid YAML ({' '.join(str(err).split())}); fix the file"
        ) from None
    if not isinstance(value, dict):
        if node is None:
            raise InputError(f"{what} {path}{where} is empty; it must hold a mapping of options (key: value lines)")
        kind = {list: "a list", str: "a plain string"}.get(type(value), f"a {type(value).__name__}")
        line = node.start_mark.line + 1
        raise InputError(
            f"{what} {path}{where} holds {kind} at line {line}, not a mapping of options (key: value lines)"
        )
    return value
