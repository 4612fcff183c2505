"""Starts the mock upstream (`cliproxy-mock`) once per session and builds client configs pointing at it."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from typing import Any, Dict, Iterator, List, Optional

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
MOCK_BIN = os.path.join(TARGET, "debug", "cliproxy-mock")

OPENAI_MODEL = "mock-gpt"  # an openai-compatibility alias: OpenAI requests pass through, Anthropic ones translate
CLAUDE_MODEL = "claude-sonnet-4-5"  # a claude-api-key model: Anthropic requests pass through, OpenAI ones translate
MODELS = [OPENAI_MODEL, CLAUDE_MODEL]

# Multi-byte text: 2-, 3- and 4-byte UTF-8 sequences, a flag (two code points) and a skin-tone modifier.
TEXT = "Grüße, 世界! 日本語のテキスト 👋🏽 café ∑ 🇩🇪 🎉"


class Mock:
    def __init__(self, url: str) -> None:
        self.url = url

    def hits(self) -> Dict[str, Any]:
        """`{"total", "cancelled", "by_key"}` as the mock counts them."""
        with urllib.request.urlopen(self.url + "/__mock/hits", timeout=5) as r:
            return json.loads(r.read())

    def wait_for(self, predicate, timeout: float = 5.0) -> Dict[str, Any]:
        """Polls the hit counters until `predicate(hits)` holds; returns the last counters either way."""
        deadline = time.monotonic() + timeout
        hits = self.hits()
        while not predicate(hits) and time.monotonic() < deadline:
            time.sleep(0.02)
            hits = self.hits()
        return hits


@pytest.fixture(scope="session")
def mock() -> Iterator[Mock]:
    assert os.path.exists(MOCK_BIN), f"{MOCK_BIN} is missing: run `cargo build -p cliproxy-mock` first"
    proc = subprocess.Popen([MOCK_BIN, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on "), f"cliproxy-mock said {line!r}"
    yield Mock(line[len("listening on "):])
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def auth_dir() -> Iterator[str]:
    """An empty credential directory, so no file from the user's home joins the tests' credential pool."""
    with tempfile.TemporaryDirectory() as d:
        yield d


def make_config(
    mock_url: str,
    auth_dir: str,
    openai_keys: Optional[List[str]] = None,
    claude_keys: Optional[List[str]] = None,
    **extra: Any,
) -> Dict[str, Any]:
    """One openai-compatibility entry and the Claude keys, all on the mock, with short timeouts."""
    config: Dict[str, Any] = {
        "auth-dir": auth_dir,
        "request-retry": 3,
        "max-retry-interval": 0,
        "timeouts": {"first-byte-seconds": 5, "idle-seconds": 10},
    }
    openai_keys = ["sk-py-openai-1"] if openai_keys is None else openai_keys
    claude_keys = ["sk-ant-py-1"] if claude_keys is None else claude_keys
    if openai_keys:
        config["openai-compatibility"] = [{
            "name": "mock",
            "base-url": mock_url + "/v1",
            "api-key-entries": [{"api-key": k} for k in openai_keys],
            "models": [{"name": "gpt-4o", "alias": OPENAI_MODEL}],
        }]
    if claude_keys:
        config["claude-api-key"] = [{"api-key": k, "base-url": mock_url} for k in claude_keys]
    config.update(extra)
    return config


@pytest.fixture(scope="session")
def config(mock: Mock, auth_dir: str) -> Dict[str, Any]:
    return make_config(mock.url, auth_dir)


@pytest.fixture(scope="session")
def client(config):
    import cliproxy

    return cliproxy.Client(config)


@pytest.fixture(scope="session")
def aclient(config):
    import cliproxy

    return cliproxy.AsyncClient(config)


def directive(**kw: Any) -> str:
    return "mock:" + json.dumps(kw, ensure_ascii=False, separators=(",", ":"))


def user(text: str) -> List[Dict[str, Any]]:
    return [{"role": "user", "content": text}]


def chat_text(chunks) -> str:
    """The assistant text of OpenAI stream chunks."""
    out = []
    for c in chunks:
        for choice in c.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                out.append(piece)
    return "".join(out)


def messages_text(events) -> str:
    """The assistant text of Anthropic stream events."""
    return "".join(
        e["delta"]["text"]
        for e in events
        if e.get("type") == "content_block_delta" and e["delta"].get("type") == "text_delta"
    )
