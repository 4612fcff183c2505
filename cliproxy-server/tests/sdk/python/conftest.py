"""Starts the real mock upstream and the real server binaries for the official-SDK tests."""
import json
import os
import sys
import tempfile

import pytest

# binaries.py, shared with the other Python suites, lives in cliproxy-server/tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
import binaries  # noqa: E402

CLIENT_KEY = "sdk-client-key"
MGMT = "sdk-mgmt-secret"


mock = pytest.fixture(scope="session")(binaries.mock)


BASE = f"""
port: 0
api-keys: ["{CLIENT_KEY}"]
remote-management: {{ secret-key: "{MGMT}" }}
request-retry: 3
max-retry-interval: 0
timeouts: {{ first-byte-seconds: 2, idle-seconds: 10 }}
"""


def server_config(mock_url):
    """The base settings plus one Claude key, one Gemini key and one OpenAI-compatible entry on the mock."""
    return BASE + f"""
claude-api-key:
  - {{ api-key: sk-ant-sdk-1, base-url: "{mock_url}" }}
gemini-api-key:
  - {{ api-key: AIzaSy-sdk-1, base-url: "{mock_url}" }}
openai-compatibility:
  - name: mockcompat
    base-url: "{mock_url}/v1"
    api-key-entries: [{{ api-key: sk-compat-1 }}]
    models: [{{ name: gpt-4o, alias: compat-gpt-4o }}]
"""


class Server:
    def __init__(self, config_text):
        self.dir = tempfile.TemporaryDirectory()
        path = os.path.join(self.dir.name, "config.yaml")
        with open(path, "w") as f:
            f.write(config_text)
        env = dict(os.environ)
        env.pop("CLIPROXY_API_KEY", None)
        self.proc, self.url = binaries.start("cliproxy-server", ["--config", path], env)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(15)
        self.dir.cleanup()


@pytest.fixture(scope="session")
def server(mock):
    s = Server(server_config(mock))
    yield s
    s.stop()


@pytest.fixture
def make_server(mock):
    """Starts a server with the base settings and the given provider section (YAML text)."""
    started = []

    def make(providers):
        s = Server(BASE + providers)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def directive(**kw):
    return "mock:" + json.dumps(kw, ensure_ascii=False, separators=(",", ":"))
