"""Interactive logins, driven against the mock upstream: GitHub's device code (Copilot), and Claude's
authorization code with PKCE, finished by the login's own callback listener or by a pasted code."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.parse
import urllib.request

import pytest

import cliproxy
from conftest import directive, user

ACCOUNT = "copilot:github-copilot-mona"  # the mock GitHub's user is "mona"


def copilot_config(mock_url: str, auth_dir: str, github: str = "") -> dict:
    return {
        "auth-dir": auth_dir,
        "max-retry-interval": 0,
        "github-copilot": {"github-base-url": github or mock_url, "github-api-base-url": mock_url,
                           "api-base-url": ""},
    }


def test_device_login_joins_the_pool(mock, tmp_path):
    client = cliproxy.Client(copilot_config(mock.url, str(tmp_path)))
    flow = client.login("copilot")
    assert flow.provider == "copilot"
    assert flow.verification_uri == "https://github.com/login/device"
    assert len(flow.user_code) == 9 and flow.expires_in > 0
    assert flow.status == "pending"
    assert flow.wait(timeout=30) == ACCOUNT
    assert flow.status == "success"
    assert (tmp_path / "github-copilot-mona.json").exists()
    assert [c["id"] for c in client.credentials()] == [ACCOUNT]
    r = client.chat(model="copilot/gpt-4o", messages=user(directive(reply="fresh account")))
    assert r["choices"][0]["message"]["content"] == "fresh account"


def test_device_login_async(mock, tmp_path):
    client = cliproxy.AsyncClient(copilot_config(mock.url, str(tmp_path)))

    async def main():
        flow = await client.login("copilot")
        return await flow.wait_async(timeout=30)

    assert asyncio.run(main()) == ACCOUNT


def test_refused_login_raises_from_wait(mock, tmp_path):
    client = cliproxy.Client(copilot_config(mock.url, str(tmp_path), github=mock.url + "/denied"))
    flow = client.login("copilot")
    with pytest.raises(cliproxy.Error, match="denied"):
        flow.wait(timeout=30)
    assert flow.status == "failed"
    assert not (tmp_path / "github-copilot-mona.json").exists()


def test_wait_gives_up_after_its_timeout(mock, tmp_path):
    client = cliproxy.Client(copilot_config(mock.url, str(tmp_path)))
    flow = client.login("copilot")
    with pytest.raises(cliproxy.TimeoutError):
        flow.wait(timeout=0.01)
    assert flow.wait(timeout=30) == ACCOUNT


def claude_config(mock_url: str, auth_dir: str) -> dict:
    return {
        "auth-dir": auth_dir,
        "claude-endpoints": {"auth-base-url": mock_url, "token-url": mock_url + "/v1/oauth/token",
                             "api-base-url": mock_url},
    }


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def approve(authorize_url: str) -> str:
    """What a browser that approved is sent back to (the redirect is read, not followed)."""
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as e:
        opener.open(authorize_url, timeout=10)
    assert e.value.code == 302
    return e.value.headers["location"]


def test_claude_login_comes_back_to_the_callback_listener(mock, tmp_path):
    client = cliproxy.Client(claude_config(mock.url, str(tmp_path)))
    flow = client.login("claude", callback_port=0)
    assert flow.provider == "claude" and flow.user_code == ""
    assert flow.verification_uri.startswith(mock.url + "/oauth/authorize?")
    assert flow.redirect_uri.startswith("http://localhost:") and flow.redirect_uri.endswith("/callback")
    back = approve(flow.verification_uri)
    assert back.startswith(flow.redirect_uri)
    with urllib.request.urlopen(back, timeout=30) as r:
        assert b"Logged in" in r.read()
    credential = flow.wait(timeout=30)
    email = credential.removeprefix("claude:claude-")
    assert (tmp_path / f"claude-{email}.json").exists()
    r = client.messages(model="claude-sonnet-4-5", max_tokens=32, messages=user(directive(reply="subscribed")))
    assert r["content"][0]["text"] == "subscribed"


def test_claude_login_with_a_pasted_code(mock, tmp_path):
    client = cliproxy.Client(claude_config(mock.url, str(tmp_path)))
    flow = client.login("claude", callback_port=0)
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(approve(flow.verification_uri)).query))
    with pytest.raises(cliproxy.InvalidRequestError, match="another login"):
        flow.complete(q["code"] + "#not-this-login")
    flow.complete(q["code"] + "#" + q["state"])
    assert flow.wait(timeout=30).startswith("claude:claude-user-")
    with pytest.raises(cliproxy.InvalidRequestError):
        flow.complete(q["code"] + "#" + q["state"])
