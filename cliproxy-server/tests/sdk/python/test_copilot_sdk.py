"""GitHub Copilot as a developer uses it: `cliproxy-server login copilot` once against the mock GitHub, then the
official SDKs through the server, across a Copilot token expiry and a per-model rate limit."""
import json
import os
import subprocess
import tempfile
import time

import anthropic
import httpx
import openai
import pytest

from binaries import TARGET
from conftest import CLIENT_KEY, directive

BIN = os.path.join(TARGET, "debug", "cliproxy-server")


def copilot_section(mock, auth_dir):
    return f"""
auth-dir: "{auth_dir}"
github-copilot:
  github-base-url: "{mock}"
  github-api-base-url: "{mock}"
"""


def exchanges(mock, github_token):
    return httpx.get(mock + "/__mock/hits").json()["by_key"].get(github_token, 0)


def wait_for_models(url, model="copilot/gpt-4o"):
    deadline = time.time() + 15
    while time.time() < deadline:
        r = httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {CLIENT_KEY}"})
        if model in [m["id"] for m in r.json()["data"]]:
            return
        time.sleep(0.05)
    raise AssertionError(f"{model} never listed")


@pytest.fixture
def auth_dir():
    with tempfile.TemporaryDirectory() as d:
        yield d


def test_cli_login_then_openai_sdk_streams_through_copilot(make_server, mock, auth_dir):
    config = os.path.join(auth_dir, "config.yaml")
    with open(config, "w") as f:
        f.write(copilot_section(mock, auth_dir))
    env = dict(os.environ, XDG_CONFIG_HOME=os.path.join(auth_dir, "no-editor"))
    out = subprocess.run([BIN, "--config", config, "login", "copilot"], capture_output=True, text=True,
                         timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Logged in: credential copilot:github-copilot-mona" in out.stdout
    with open(os.path.join(auth_dir, "github-copilot-mona.json")) as f:
        account = json.load(f)
    assert account["type"] == "github-copilot" and account["access_token"].startswith("gho_")

    s = make_server(copilot_section(mock, auth_dir))
    wait_for_models(s.url)
    client = openai.OpenAI(base_url=s.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    text = "Grüße from Copilot 👋"
    stream = client.chat.completions.create(
        model="copilot/gpt-4o", stream=True,
        messages=[{"role": "user", "content": directive(reply=text, chunk=3)}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == text
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": directive(reply=text)}])
    assert r.choices[0].message.content == text

    ac = anthropic.Anthropic(base_url=s.url, api_key=CLIENT_KEY, max_retries=0)
    m = ac.messages.create(model="claude-sonnet-4", max_tokens=64,
                           messages=[{"role": "user", "content": directive(reply="via messages")}])
    assert m.content[0].text == "via messages"


def test_expired_copilot_token_is_renewed_with_one_exchange(make_server, mock, auth_dir):
    token = "gho_short_sdk_1"  # the mock's Copilot tokens for `short` GitHub tokens live 2 s
    with open(os.path.join(auth_dir, "github-copilot-shorty.json"), "w") as f:
        json.dump({"type": "github-copilot", "username": "shorty", "access_token": token}, f)
    s = make_server(copilot_section(mock, auth_dir))
    wait_for_models(s.url)
    client = openai.OpenAI(base_url=s.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    time.sleep(2.5)
    before = exchanges(mock, token)
    stream = client.chat.completions.create(model="gpt-4o", stream=True,
                                            messages=[{"role": "user", "content": directive(reply="renewed")}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "renewed"
    assert exchanges(mock, token) == before + 1


def test_model_rate_limit_leaves_other_models_usable(make_server, mock, auth_dir):
    with open(os.path.join(auth_dir, "github-copilot-limits.json"), "w") as f:
        json.dump({"type": "github-copilot", "username": "limits", "access_token": "gho_limits_sdk_1"}, f)
    s = make_server(copilot_section(mock, auth_dir))
    wait_for_models(s.url)
    client = openai.OpenAI(base_url=s.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    limited = directive(fault={"status": 429, "headers": {"retry-after": "300"},
                               "body": {"error": {"message": "Rate limited", "code": "user_model_rate_limited"}}})
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": limited}])
    r = client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": directive(reply="ok")}])
    assert r.choices[0].message.content == "ok"
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": directive(reply="ok")}])
    assert e.value.response.headers.get("retry-after")
