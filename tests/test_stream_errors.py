"""An error in the middle of a stream ends it with an error event that says what happened,
then the end event; never LangServe's generic 500 (composition test with a fake model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from langdeploy.errors import UpstreamUnavailable
from langdeploy.models.factory import ChatRunnable, ModelHandle
from langdeploy.serve import create_app
from tests.conftest import make_settings
from tests.sse import parse_sse


class DiesMidStream(GenericFakeChatModel):
    """Streams a few words, then its upstream goes away."""

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for i, chunk in enumerate(super()._stream(messages, stop, run_manager, **kwargs)):
            if i == 3:
                raise UpstreamUnavailable("The model server at http://gpu:8000/v1 went away.")
            yield chunk


class FakeHandle(ModelHandle):
    name = "fake"

    def __init__(self) -> None:
        self.base_model = DiesMidStream(
            messages=iter([AIMessage(content="one two three four five six seven")])
        )

    @property
    def chat_model(self) -> ChatRunnable:
        return self.base_model

    @property
    def ready(self) -> bool:
        return True

    @property
    def n_ctx(self) -> int:
        return 2048

    def load(self) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def test_mid_stream_failure_is_an_error_event_with_its_status(empty_dir: Path) -> None:
    settings = make_settings(empty_dir, server={"chains": ["chat"]}, guards={"enabled": False})
    with TestClient(create_app(settings, model=FakeHandle()), raise_server_exceptions=False) as c:
        r = c.post(
            "/chat/stream", json={"input": {"messages": [{"type": "human", "content": "x"}]}}
        )
    assert r.status_code == 200  # the stream had started
    events = parse_sse(r.text)
    names = [e for e, _ in events]
    assert names.count("data") == 3 and names[-2:] == ["error", "end"]
    error = events[-2][1]
    assert error["status_code"] == 503
    assert error["error"]["type"] == "upstream_unavailable"
    assert "went away" in error["message"]
