"""Calls to mail hosts, several at a time from one worker.

A worker spends most of a paced send waiting for the host's answer (two HTTP requests for a
Gmail send, an inbox page for a read). `HostCalls` runs up to `limit` such calls at once on a
small thread pool; everything around a call (the claim, the gate before it, the record after
it, an inbox page's effects) stays on the worker's own thread, one at a time, so the
database sees the same statements in the same order as with one call at a time. The callers
never put two calls of one mailbox in flight together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Generic, TypeVar

from sendwell.kit.logging import get_logger

log = get_logger(__name__)
K = TypeVar("K")
T = TypeVar("T")


def each(items: Iterable[K], action: Callable[[K], object], failed: str) -> None:
    """`action` on every item, even after one raised (each error logged as `failed`); the
    first error is raised once all have been tried: one bad row holds no other back."""
    first: Exception | None = None
    for item in items:
        try:
            action(item)
        except Exception as error:
            log.exception(failed, item=repr(item))
            first = first or error
    if first is not None:
        raise first


class HostCalls:
    """A worker's pool of host calls; `limit` 1 makes every call on the worker's thread."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("at least one call at a time")
        self.limit = limit
        self._pool: ThreadPoolExecutor | None = None

    def window(self, done: Callable[[list[tuple[K, T]]], object]) -> Window[K, T]:
        """A run of calls; `done` gets the keys and answers of those that finished, together,
        on the caller's thread."""
        return Window(self, done)

    def submit(self, call: Callable[[], T]) -> Future[T]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.limit, thread_name_prefix="host-call")
        return self._pool.submit(call)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class Window(Generic[K, T]):
    """Calls in flight together. `make_room` waits until another call may start, handing
    those that finished meanwhile to `done` (all that finished, in one list); leaving the
    block waits for the rest. A call that raised is re-raised once every other call has been
    handed over (its claim stays gated, so it is settled as a send of unknown outcome, as
    when the worker's own thread raises)."""

    def __init__(self, calls: HostCalls, done: Callable[[list[tuple[K, T]]], object]) -> None:
        self.calls, self.done = calls, done
        self._running: dict[Future[T], K] = {}
        self._error: BaseException | None = None

    def make_room(self) -> int:
        """Wait until at least one more call may start; returns how many may."""
        while len(self._running) >= self.calls.limit:
            self._hand_over_finished()
        if self._error is not None:
            raise self._error  # no new call after one failed; leaving the block waits
        return self.calls.limit - len(self._running)

    def add(self, key: K, call: Callable[[], T]) -> None:
        """Start the call (waiting for room first, unless `make_room` just made it)."""
        if self.calls.limit == 1:
            self.done([(key, call())])
            return
        self.make_room()
        self._running[self.calls.submit(call)] = key

    def __enter__(self) -> Window[K, T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        while self._running:
            self._hand_over_finished()
        if self._error is not None and error is None:
            raise self._error

    def _hand_over_finished(self) -> None:
        finished, _ = wait(self._running, return_when=FIRST_COMPLETED)
        answers: list[tuple[K, T]] = []
        for future in finished:
            key = self._running.pop(future)
            try:
                answers.append((key, future.result()))
            except Exception as error:  # every other call is still handed over first
                log.exception("host_call_failed", key=repr(key))
                self._error = self._error or error
        if not answers:
            return
        try:
            self.done(answers)
        except Exception as error:
            log.exception("host_calls_not_handed_over", keys=[repr(k) for k, _ in answers])
            self._error = self._error or error
