"""Interactive (device-code) logins, driven against the mock GitHub that ships with the mock upstream."""

from __future__ import annotations

import asyncio

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
