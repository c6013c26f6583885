"""Concurrent requests gathered into one model call: a bounded queue and one worker thread.

The first request of a batch waits at most ``max_wait_ms`` for company; while the model is busy
the next requests queue and go together in the following call. A full queue or a request that
waited past ``queue_timeout_s`` is refused with :class:`Overloaded` (the service's 503), so
latency stays bounded when clients send more than the model can place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import polars as pl

from segmenter.data import EventData

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: ``predict(data) -> assignments`` with one row per customer (``user_id`` first)
Predict = Callable[[EventData], pl.DataFrame]
#: separates a request's sequence number from its own user ids inside a batch
_SEP = "\x1f"


class Overloaded(RuntimeError):
    """The queue is full, or a request waited longer than the queue timeout."""


@dataclass
class _Item:
    data: EventData
    customers: int
    future: asyncio.Future[pl.DataFrame]
    queued_at: float


class MicroBatcher:
    """Gathers :meth:`submit` calls into batches for one ``predict`` call at a time.

    Parameters
    ----------
    predict : callable
        ``predict(data) -> polars.DataFrame`` (one row per customer, ``user_id`` column).
    max_wait_ms : float
        Longest the first request of a batch waits for others while the model is idle.
    max_batch : int
        Most customers in one model call.
    max_queue : int
        Most customers waiting; beyond, :meth:`submit` raises :class:`Overloaded`.
    queue_timeout_s : float
        A request still queued after this long is refused with :class:`Overloaded`.
    on_batch : callable, optional
        ``on_batch(customers, seconds)`` after each model call (metrics).
    """

    def __init__(
        self,
        predict: Predict,
        *,
        max_wait_ms: float = 2.0,
        max_batch: int = 256,
        max_queue: int = 512,
        queue_timeout_s: float = 1.0,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.predict = predict
        self.max_wait_ms = max_wait_ms
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.on_batch = on_batch
        self.pending = 0
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="segmenter-model")
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._task = self._executor = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the model's thread, after the model calls already queued there
        (work that uses the model, such as explanations, never runs beside a placement)."""
        if self._executor is None:
            raise RuntimeError("MicroBatcher is not started; call start() first")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def submit(self, data: EventData) -> pl.DataFrame:
        """Place the customers of ``data``; their rows of the batch's assignments."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher is not started; call start() first")
        customers = data.n_users
        if self.pending + customers > self.max_queue:
            raise Overloaded(f"queue full: {self.pending} customers waiting")
        future: asyncio.Future[pl.DataFrame] = asyncio.get_running_loop().create_future()
        self.pending += customers
        self._queue.put_nowait(_Item(data, customers, future, time.perf_counter()))
        return await future

    async def _run(self) -> None:
        queue = self._queue
        if queue is None:
            return
        while True:
            batch = [await queue.get()]
            deadline = time.perf_counter() + self.max_wait_ms / 1000
            size = batch[0].customers
            while size < self.max_batch:
                if not queue.empty():
                    item = queue.get_nowait()
                else:
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(queue.get(), left)
                    except TimeoutError:
                        break
                batch.append(item)
                size += item.customers
            await self._place(batch)

    async def _place(self, batch: list[_Item]) -> None:
        now = time.perf_counter()
        live: list[_Item] = []
        for item in batch:
            self.pending -= item.customers
            if item.future.done():  # the client went away
                continue
            if now - item.queued_at > self.queue_timeout_s:
                item.future.set_exception(
                    Overloaded(f"waited {now - item.queued_at:.2f} s in the queue")
                )
                continue
            live.append(item)
        if not live:
            return
        frames = [
            item.data.events.with_columns(
                (pl.lit(f"{i}{_SEP}") + pl.col("user_id")).alias("user_id")
            )
            for i, item in enumerate(live)
        ]
        merged = EventData(pl.concat(frames), source="<service>")
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        try:
            placed = await loop.run_in_executor(self._executor, self.predict, merged)
        except Exception as exc:
            logger.error("model call failed: %s", type(exc).__name__)
            for item in live:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        if self.on_batch is not None:
            self.on_batch(sum(item.customers for item in live), time.perf_counter() - start)
        key = placed["user_id"].str.split_exact(_SEP, 1)
        placed = placed.with_columns(
            key.struct.field("field_0").cast(pl.Int64).alias("__request__"),
            key.struct.field("field_1").alias("user_id"),
        )
        for i, part in placed.partition_by("__request__", as_dict=True).items():
            item = live[int(i[0])]
            if not item.future.done():
                item.future.set_result(part.drop("__request__"))
