"""An object's own attributes by name, whether its class is compiled by mypyc or not.

Why: a checkpoint saves a processor's attributes, and a split replay pickles its aggregates. ``vars()`` reads a
Python object's attributes; a class compiled by mypyc (``setup.py``) has neither ``__dict__`` nor ``__slots__``,
but names its attributes in ``__mypyc_attrs__`` (class constants are ``ClassVar`` and not among them).
"""

from __future__ import annotations

from typing import Any


def own_attributes(obj: Any) -> dict[str, Any]:
    """``obj``'s attributes that are set, by name: what ``vars()`` gives of a Python object."""
    names = getattr(type(obj), "__mypyc_attrs__", None)
    if names is None:
        names = getattr(type(obj), "__slots__", None)
        if names is None:
            return dict(vars(obj))
    return {name: getattr(obj, name) for name in names if hasattr(obj, name)}
