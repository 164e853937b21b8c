"""Politeness per host: a cap on concurrent requests and a minimum gap between two of them.

A host that answers 429 or 503 with Retry-After is held back as a whole (every feed on it waits),
while feeds on other hosts go on: one host's limit never stalls unrelated feeds.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType


class HostGate:
    """Admit requests to one host: at most ``concurrency`` at once, ``min_gap`` seconds apart."""

    def __init__(self, concurrency: int, min_gap: float) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._turn = asyncio.Lock()
        self._min_gap = min_gap
        self._next_start = 0.0

    def hold(self, seconds: float) -> None:
        """Keep every request to this host waiting for ``seconds`` from now (Retry-After)."""
        self._next_start = max(self._next_start, time.monotonic() + seconds)

    async def __aenter__(self) -> HostGate:
        await self._slots.acquire()
        try:
            async with self._turn:
                wait = self._next_start - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._next_start = max(self._next_start, time.monotonic() + self._min_gap)
        except BaseException:
            self._slots.release()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._slots.release()
