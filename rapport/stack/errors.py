"""The one error the local stack raises."""

from __future__ import annotations


class StackError(RuntimeError):
    """A step of bringing the stack up or down failed; the message is one line."""
