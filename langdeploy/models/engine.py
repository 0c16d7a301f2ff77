"""The engine: one loaded llama.cpp model with its context, a bounded queue and one worker.

llama.cpp contexts are not thread-safe (concurrent streams through langchain-community's
ChatLlamaCpp crashed the server with SIGSEGV here), so every use of the context goes through one
worker thread that takes jobs from a bounded queue. Callers, sync or async, only submit jobs and
read token deltas back. Scheduling lives here alone, so continuous batching can replace the
worker loop later without touching the chat model or the server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langdeploy.errors import (
    LangdeployError,
    MissingDependencyError,
    ModelNotReady,
    QueueFull,
    ServiceUnavailable,
)
from langdeploy.settings import BackendSettings

log = logging.getLogger(__name__)


def default_threads() -> int:
    """Half the CPUs this process may use (a guess at physical cores), at least one.

    ggml's threads spin at barriers: more threads than free cores makes generation collapse
    (2 tok/s against 20 tok/s measured on a busy 2-core machine), and the HTTP server needs a core.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 2
    return max(1, cpus // 2)


@dataclass(frozen=True)
class GenParams:
    """Sampling parameters for one request."""

    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    repeat_penalty: float = 1.1
    max_tokens: int = 256
    seed: int = -1
    stop: tuple[str, ...] = ()
    response_format: dict[str, Any] | None = None


@dataclass
class Delta:
    """One piece of a streamed answer. The last delta has ``finish_reason`` and usage set."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


_DONE = object()


def _deliver(job: _Job, item: Any) -> None:
    """Hand ``item`` to the job's caller. A caller that is gone (its event loop closed) cancels
    its job; it must never take the worker thread down with it."""
    if job.cancel.is_set():
        return
    try:
        job.sink(item)
    except Exception:
        job.cancel.set()


def _unpack(item: Any) -> Delta | None:
    """What a worker's item means to the stream that reads it (sync or async alike): a delta,
    None for the end, or the generation's error, raised here."""
    if item is _DONE:
        return None
    if isinstance(item, BaseException):
        raise item
    return item


@dataclass
class _Job:
    messages: list[dict[str, Any]]
    params: GenParams
    sink: Any  # a callable taking a Delta, an Exception or _DONE
    cancel: threading.Event = field(default_factory=threading.Event)
    enqueued: float = field(default_factory=time.monotonic)


class LlamaEngine:
    """Owns one llama.cpp model instance; all access to its context is serialised here."""

    def __init__(self, model_path: Path, settings: BackendSettings, chat_format: str | None = None):
        self.model_path = model_path
        self.settings = settings
        self.chat_format = settings.chat_format or chat_format
        self._llama: Any = None
        # queue_size waiting plus the one the worker is about to take: the HTTP admission layer
        # admits queue_size + 1, and a job sits here until the worker wakes to take it.
        self._jobs: queue.Queue[_Job] = queue.Queue(maxsize=settings.queue_size + 1)
        self._loaded = threading.Event()
        self._load_lock = threading.Lock()
        self._loading = False
        self._load_error: BaseException | None = None
        self._worker: threading.Thread | None = None
        self.requests_served = 0

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._loaded.is_set()

    @property
    def loading(self) -> bool:
        return self._loading

    @property
    def load_error(self) -> BaseException | None:
        return self._load_error

    def load(self) -> None:
        """Load the weights (blocking) and start the worker. Safe to call more than once."""
        with self._load_lock:
            if self._loaded.is_set():
                return
            self._loading = True
            try:
                self._llama = self._open()
                self._worker = threading.Thread(
                    target=self._run, name=f"llama-engine:{self.model_path.name}", daemon=True
                )
                self._worker.start()
                self._loaded.set()
            except BaseException as exc:
                self._load_error = exc
                raise
            finally:
                self._loading = False

    def _open(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise MissingDependencyError("llama_cpp", "local") from None
        s = self.settings
        n_threads = s.n_threads or default_threads()
        t0 = time.perf_counter()
        try:
            llama = Llama(
                model_path=str(self.model_path),
                n_ctx=s.n_ctx,
                n_batch=min(s.n_batch, s.n_ctx),
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_gpu_layers=s.n_gpu_layers,
                main_gpu=s.main_gpu,
                chat_format=self.chat_format,
                seed=s.seed if s.seed >= 0 else 0xFFFFFFFF,
                verbose=False,
            )
        except ValueError as exc:
            raise LangdeployError(
                f"llama.cpp could not load {self.model_path}: {exc}.",
                fix="Check that the file is a complete GGUF model and that n_ctx fits in memory.",
            ) from None
        log.info(
            "loaded %s in %.2fs (n_ctx=%d, threads=%d, gpu_layers=%d)",
            self.model_path.name,
            time.perf_counter() - t0,
            s.n_ctx,
            n_threads,
            s.n_gpu_layers,
        )
        return llama

    def close(self) -> None:
        """Stop the worker and free the model."""
        if self._worker is not None:
            self._jobs.put(_Job(messages=[], params=GenParams(), sink=None))
            self._worker.join(timeout=30)
            self._worker = None
        if self._llama is not None:
            self._llama.close()
            self._llama = None
        self._loaded.clear()

    # -- tokens ----------------------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return self.settings.n_ctx

    def tokenize(self, text: str) -> list[int]:
        self._ensure_loaded()
        # Tokenizing reads only the vocabulary, never the context, so it needs no queue.
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    # -- generation ------------------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        if self._loaded.is_set():
            return
        if self._loading:
            raise ModelNotReady(
                f"The model {self.model_path.name} is still loading.",
                retry_after=2.0,
                fix="Retry shortly; /readyz turns 200 when it is ready.",
            )
        # Used from Python without a server: load on first use.
        self.load()

    def _submit(self, job: _Job) -> None:
        self._ensure_loaded()
        if self._worker is not None and not self._worker.is_alive():
            # Never queue work that nobody will take: bring the worker back.
            log.error("the engine worker had stopped; restarting it")
            self._worker = threading.Thread(
                target=self._run, name=f"llama-engine:{self.model_path.name}", daemon=True
            )
            self._worker.start()
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise self._queue_full() from None

    @property
    def queue_depth(self) -> int:
        return self._jobs.qsize()

    @property
    def retry_after_s(self) -> float:
        """The wait a refused client is told: about a quarter of a full queue's turn."""
        return max(1.0, self.settings.queue_size / 4)

    def _queue_full(self) -> QueueFull:
        return QueueFull(
            f"The model is busy: {self.settings.queue_size} requests are already waiting.",
            retry_after=self.retry_after_s,
            fix="Retry after the Retry-After delay, or raise model.queue_size.",
        )

    def _timeout(self, job: _Job) -> ServiceUnavailable:
        job.cancel.set()
        return ServiceUnavailable(
            f"The model did not start answering within {self.settings.queue_timeout_s:.0f}s.",
            retry_after=5.0,
            fix="Retry later, or scale out replicas; model.queue_timeout_s sets the wait.",
        )

    def stream(self, messages: list[dict[str, Any]], params: GenParams) -> Iterator[Delta]:
        """Generate, yielding deltas; blocks the calling thread. Closing the iterator cancels."""
        out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        job = _Job(messages=messages, params=params, sink=out.put)
        self._submit(job)
        deadline = job.enqueued + self.settings.queue_timeout_s
        started = False
        try:
            while True:
                try:
                    wait = None if started else max(0.0, deadline - time.monotonic())
                    item = out.get(timeout=wait)
                except queue.Empty:
                    raise self._timeout(job) from None
                started = True
                delta = _unpack(item)
                if delta is None:
                    return
                yield delta
        finally:
            job.cancel.set()

    async def astream(
        self, messages: list[dict[str, Any]], params: GenParams
    ) -> AsyncIterator[Delta]:
        """Generate without blocking the event loop; tokens cross from the worker thread."""
        loop = asyncio.get_running_loop()
        out: asyncio.Queue[Any] = asyncio.Queue()

        def sink(item: Any) -> None:
            # Raises RuntimeError once the loop is closed; _deliver then cancels the job.
            loop.call_soon_threadsafe(out.put_nowait, item)

        job = _Job(messages=messages, params=params, sink=sink)
        self._submit(job)
        started = False
        try:
            while True:
                if started:
                    item = await out.get()
                else:
                    try:
                        item = await asyncio.wait_for(out.get(), self.settings.queue_timeout_s)
                    except TimeoutError:
                        raise self._timeout(job) from None
                    started = True
                delta = _unpack(item)
                if delta is None:
                    return
                yield delta
        finally:
            # A client that disconnects closes this generator: stop generating for it.
            job.cancel.set()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job.sink is None:  # close()
                return
            if job.cancel.is_set():
                continue
            try:
                self._generate(job)
                _deliver(job, _DONE)
            except Exception as exc:
                log.exception("generation failed")
                error = (
                    exc
                    if isinstance(exc, LangdeployError)
                    else LangdeployError(
                        "The model failed while generating.", fix="See the server log for details."
                    )
                )
                _deliver(job, error)
            finally:
                self.requests_served += 1

    def _generate(self, job: _Job) -> None:
        p = job.params
        kwargs: dict[str, Any] = {
            "messages": job.messages,
            "temperature": p.temperature,
            "top_k": p.top_k,
            "top_p": p.top_p,
            "repeat_penalty": p.repeat_penalty,
            "max_tokens": p.max_tokens,
            "stop": list(p.stop),
            "stream": True,
        }
        if p.seed >= 0:
            kwargs["seed"] = p.seed
        if p.response_format is not None:
            kwargs["response_format"] = p.response_format
        llama = self._llama
        completion = 0
        prompt_tokens: int | None = None
        finish: str | None = None
        chunks = llama.create_chat_completion(**kwargs)
        try:
            for chunk in chunks:
                if job.cancel.is_set():
                    finish = "cancelled"
                    break
                choice = chunk["choices"][0]
                text = choice.get("delta", {}).get("content") or ""
                finish = choice.get("finish_reason") or finish
                if text:
                    if prompt_tokens is None:
                        # The prompt is in the context now and the first token not yet evaluated.
                        prompt_tokens = max(0, llama.n_tokens)
                    completion += 1
                    _deliver(job, Delta(text=text))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if prompt_tokens is None:
            prompt_tokens = max(0, llama.n_tokens - completion)
        _deliver(
            job,
            Delta(
                finish_reason=finish or "stop",
                prompt_tokens=prompt_tokens,
                completion_tokens=completion,
            ),
        )
