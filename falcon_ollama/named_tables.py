"""The ``[<kind>.<name>]`` tables of the configuration files (backends, tenants): one rule for their names.

A name is a metric label and appears in logs, so it is 1 to 64 of ``A-Z a-z 0-9 _ . -``, starting with a
letter or a digit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_RULE: Final = (
    "a name is 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit (it is a metric label)"
)


def named_tables(
    tables: Mapping[str, object], where_of: Callable[[str], str]
) -> Iterator[tuple[str, dict[str, Any], str]]:
    """Each table with its name and ``where_of(name)``, the place errors name; raises ValueError for a name
    that breaks the rule or a value that is not a table, when the walk reaches it."""
    for name, table in tables.items():
        where = where_of(name)
        if not NAME.fullmatch(name):
            raise ValueError(f"{where}: {NAME_RULE}")
        if not isinstance(table, dict):
            raise ValueError(f"{where} must be a table")
        yield name, table, where
