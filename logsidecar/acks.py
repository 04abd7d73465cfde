"""Ordered acknowledgement: turn batches settled in any order into offsets acknowledged in file order.

Several batches of one file may be in flight at once and may settle out of order (a later, smaller
batch can finish first). A checkpoint must never move past a batch that is still in flight, so the
tracker (like Vector's `OrderedFinalizer`) releases, per file, only the end offset of the longest
contiguous prefix of settled batches.

Invariants:
- Batches of one file are registered in file order (the order the tailer emitted them).
- An offset returned by `settle` is the end of a settled batch whose every predecessor of the same
  file has settled too; offsets returned for one file strictly increase.
- Files are independent: a stuck batch of one file never holds back another file.
"""

from __future__ import annotations

from collections import deque


class AckTicket:
    """One registered batch. Kept small and mutable: `settled` flips once."""

    __slots__ = ("file_key", "end_offset", "settled")

    def __init__(self, file_key: str, end_offset: int) -> None:
        self.file_key = file_key
        self.end_offset = end_offset
        self.settled = False


class AckTracker:
    def __init__(self) -> None:
        self._pending: dict[str, deque[AckTicket]] = {}

    def register(self, file_key: str, end_offset: int) -> AckTicket:
        """Note a batch that is about to be sent; call in file order."""
        ticket = AckTicket(file_key, end_offset)
        queue = self._pending.get(file_key)
        if queue is None:
            queue = self._pending[file_key] = deque()
        queue.append(ticket)
        return ticket

    def settle(self, ticket: AckTicket) -> int | None:
        """Mark `ticket` settled. Returns the offset the file may now be acknowledged up to, or None
        when an earlier batch of the same file is still in flight (or the ticket was settled before)."""
        if ticket.settled:
            return None
        ticket.settled = True
        queue = self._pending.get(ticket.file_key)
        if not queue or not queue[0].settled:
            return None
        released = queue.popleft().end_offset
        while queue and queue[0].settled:
            released = queue.popleft().end_offset
        if not queue:
            # Forget files with nothing in flight: rotated-away files must not accumulate here.
            del self._pending[ticket.file_key]
        return released

    def in_flight(self) -> int:
        """Batches registered and not yet released (settled ones held behind a slower one count)."""
        return sum(len(queue) for queue in self._pending.values())
