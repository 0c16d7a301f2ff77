"""The engine keeps serving whatever its callers do."""

from __future__ import annotations

import threading
from typing import Any

from langdeploy.models.engine import GenParams, _Job
from langdeploy.models.factory import LocalModel, ModelHandle

HI = [{"role": "user", "content": "Say hi."}]


def test_a_caller_that_vanishes_does_not_stop_the_worker(model: ModelHandle) -> None:
    assert isinstance(model, LocalModel)
    engine = model.engine
    failed = threading.Event()

    def gone(item: Any) -> None:
        # What a sink does once its event loop has closed.
        failed.set()
        raise RuntimeError("Event loop is closed")

    engine._submit(_Job(messages=HI, params=GenParams(max_tokens=8), sink=gone))
    assert failed.wait(timeout=300)  # a bound for a hung worker, not a timing
    # The next caller is served in full.
    deltas = list(engine.stream(HI, GenParams(max_tokens=8, temperature=0)))
    assert deltas[-1].finish_reason is not None and any(d.text for d in deltas)
