"""The server-wide bound on memory held by decoded images: a weighted FIFO semaphore on bytes.

Every image reserves the bytes its decoding may take (from the header's size and mode) before a
pixel is decoded, keeps the bytes of its RGB array from then until every metric has scored it, and
gives them back only when no decode thread or batch still holds the array, even if its request
timed out meanwhile. Requests whose images do not fit wait, first come first served, so many
concurrent requests queue instead of all decoding at once.
"""

from __future__ import annotations

import asyncio
from collections import deque


class DecodeBudget:
    """At most ``capacity`` bytes reserved at once; ``acquire`` waits in FIFO order.

    Runs on one event loop: call its methods (and those of its leases) from that loop only.
    ``peak`` is the highest reservation seen, ``waiting`` the number of queued acquirers.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, not {capacity}")
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        """Acquirers queued for bytes."""
        return sum(1 for _, future in self._waiters if not future.done())

    async def acquire(self, nbytes: int) -> Lease:
        """Reserve ``nbytes`` (waiting behind earlier callers); a lease with one holder."""
        if not 0 <= nbytes <= self.capacity:
            raise ValueError(f"cannot reserve {nbytes} bytes of a budget of {self.capacity}")
        if not self._waiters and self.in_use + nbytes <= self.capacity:
            self._take(nbytes)
            return Lease(self, nbytes)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (nbytes, future)
        self._waiters.append(entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted, then cancelled: give back
                self._give(nbytes)
            else:
                self._waiters.remove(entry)
                self._wake()  # the head may have been the one that did not fit
            raise
        return Lease(self, nbytes)

    def _take(self, nbytes: int) -> None:
        self.in_use += nbytes
        self.peak = max(self.peak, self.in_use)

    def _give(self, nbytes: int) -> None:
        self.in_use -= nbytes
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            nbytes, future = self._waiters[0]
            if future.done():  # cancelled while queued
                self._waiters.popleft()
                continue
            if self.in_use + nbytes > self.capacity:
                return
            self._waiters.popleft()
            self._take(nbytes)
            future.set_result(None)


class Lease:
    """Bytes reserved from a DecodeBudget, returned when the last holder releases them.

    Each part of the server that keeps the image alive (the request, a decode thread, a queued
    batch job) ``hold``s the lease and ``release``s it when done.
    """

    def __init__(self, budget: DecodeBudget, nbytes: int) -> None:
        self._budget = budget
        self.nbytes = nbytes
        self._holders = 1

    def hold(self) -> Lease:
        """One more holder; returns self."""
        if self._holders <= 0:
            raise RuntimeError("lease already returned")
        self._holders += 1
        return self

    def shrink(self, nbytes: int) -> None:
        """Keep only ``nbytes`` (e.g. the decoded array once decoding's buffers are freed)."""
        if self._holders > 0 and nbytes < self.nbytes:
            freed, self.nbytes = self.nbytes - nbytes, nbytes
            self._budget._give(freed)

    def release(self) -> None:
        """One holder fewer; the bytes go back to the budget with the last one."""
        if self._holders <= 0:
            return
        self._holders -= 1
        if self._holders == 0:
            self._budget._give(self.nbytes)
