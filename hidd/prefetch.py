"""Overlap: the next item of a pipeline made in a background thread while the caller works on the current one.

    prefetched(items) yields what iter(items) yields, in order, item k + 1 being made while the caller holds item k

(at most one item made ahead: a queue of one). hidd.reconstruct makes each batch there (its photos read, their blur
and noise estimated, hidd.deblur.Deblurrer.estimate) while the device samples the one before, so that a folder is
bound by the sampling alone. An exception raised in the thread comes out of the caller's loop, and nothing the thread
does depends on timing, so the items are the same with and without it. The thread is a daemon: a Ctrl-C does not
wait for the item in the making.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

_END = object()  # what the thread sends once the items are exhausted


def prefetched(items: Iterable, enabled: bool = True) -> Iterator:
    """The items of `items`, each made one ahead in a background thread where `enabled` (else in the caller's)."""
    if not enabled:
        yield from items
        return
    made = queue.Queue()
    turn = threading.Semaphore(1)  # released as the caller takes an item: then the next one may be made
    stopped = threading.Event()

    def make() -> None:
        try:
            for item in items:
                made.put((item, None))
                turn.acquire()
                if stopped.is_set():
                    return
            made.put((_END, None))
        except BaseException as error:  # (to the caller, who raises it)
            made.put((_END, error))

    turn.acquire()  # the first item is made at once; each further one once the caller holds the one before
    threading.Thread(target=make, name="hidd-prefetch", daemon=True).start()
    try:
        while True:
            item, error = made.get()
            if error is not None:
                raise error
            if item is _END:
                return
            turn.release()
            yield item
    finally:
        stopped.set()
        turn.release()  # (a caller that stops early frees the thread)
