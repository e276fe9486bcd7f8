"""Helpers shared by the stage tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, key: Callable[..., Any]) -> list[Any]:
    """The calls of ``owner.name`` in this process from now on, each recorded as
    ``key(*args, **kwargs)`` (the call itself goes on as before)."""
    seen: list[Any] = []
    original = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        seen.append(key(*args, **kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return seen
