"""Overlap: the next item of a pipeline made in a background thread while the caller works on the current one.

    prefetched(items) yields what iter(items) yields, in order, item k + 1 being made while the caller holds item k

(a queue of one: at most one item made ahead). hidd.reconstruct makes each batch there (its photos read, their blur
and noise estimated, hidd.deblur.Deblurrer.estimate) while the device samples the one before, so that a folder is
bound by the sampling alone. Exceptions raised in the thread come out of the caller's `next`, and nothing the thread
does depends on timing, so the items are the same with and without it; the thread shares the process's device (its
GPU work queues on the same CUDA stream, after the batch in hand).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

_END = object()  # what next() gives once the items are exhausted


def prefetched(items: Iterable, enabled: bool = True) -> Iterator:
    """The items of `items`, each made one ahead in a background thread where `enabled` (else in the caller's)."""
    source = iter(items)
    if not enabled:
        yield from source
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hidd-prefetch")
    try:
        ahead = pool.submit(next, source, _END)
        while (item := ahead.result()) is not _END:
            ahead = pool.submit(next, source, _END)  # the next one, made while the caller holds this one
            yield item
    finally:  # (a caller that stops early, or an interrupt, leaves at most the item in the making to finish)
        pool.shutdown(wait=False, cancel_futures=True)
