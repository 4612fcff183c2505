"""Completing asyncio futures from the native runtime's threads.

The native code schedules these with ``loop.call_soon_threadsafe``, so they run on the loop's own thread,
where checking ``done()`` and setting the result cannot race with a cancellation.
"""

from __future__ import annotations

import asyncio
from typing import Any


def resolve(future: "asyncio.Future[Any]", value: Any) -> None:
    if not future.done():
        future.set_result(value)


def reject(future: "asyncio.Future[Any]", error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
