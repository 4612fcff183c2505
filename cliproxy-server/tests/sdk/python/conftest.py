"""Starts the real mock upstream and the real server binaries for the official-SDK tests."""
import json
import os
import sys
import tempfile
import urllib.request

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
    def __init__(self, config_text, env=None):
        self.dir = tempfile.TemporaryDirectory()
        path = os.path.join(self.dir.name, "config.yaml")
        with open(path, "w") as f:
            f.write(config_text)
        env = dict(os.environ, **(env or {}))
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
    """Starts a server with the base settings and the given provider section (YAML text), and extra
    environment variables (`HOME`, say) when given."""
    started = []

    def make(providers, env=None):
        s = Server(BASE + providers, env)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def directive(**kw):
    return "mock:" + json.dumps(kw, ensure_ascii=False, separators=(",", ":"))


def mock_json(mock_url, path, body=None):
    """A control call on the mock (`/__mock/...`): GET, or POST with a JSON body; the JSON answer, if any."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(mock_url + path, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        text = r.read()
    return json.loads(text) if text else None


def claude_endpoints(mock_url):
    """The `claude-endpoints` section pointing Claude subscription accounts at the mock."""
    return f"""
claude-endpoints:
  auth-base-url: "{mock_url}"
  token-url: "{mock_url}/v1/oauth/token"
  api-base-url: "{mock_url}"
"""


def sent_with(mock_url, token):
    """The `/v1/messages` requests the mock received with `token` as the bearer."""
    return [r for r in mock_json(mock_url, "/__mock/requests")
            if r["path"] == "/v1/messages" and ["authorization", f"Bearer {token}"] in r["headers"]]
