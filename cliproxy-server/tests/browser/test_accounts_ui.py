"""The accounts page at its own path in headless Chromium: a Claude login finished with a pasted `code#state`
(a wrong one refused first), the new account listed with its rate-limit windows once it served a request."""
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import CLIENT_KEY, MGMT
from test_kiro_ui import rows, text_matches


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def approve(authorize_url):
    """The code and state a browser that approved is sent back with (the redirect is read, not followed)."""
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.build_opener(NoRedirect).open(authorize_url, timeout=10)
    assert e.value.code == 302
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(e.value.headers["location"]).query))


def test_claude_login_with_a_pasted_code_on_the_accounts_page(browser, server, mock):
    page = browser.new_page()
    page.goto(server.url + "/v0/oauth/accounts")
    page.fill("#secret", MGMT)
    page.click("#login-button")
    page.wait_for_selector("#claude-login")
    assert page.url == server.url + "/v0/oauth/accounts"

    page.click("#claude-login")
    page.wait_for_selector("#claude-panel:not([hidden])")
    href = page.get_attribute("#claude-link", "href")
    assert href.startswith(mock + "/oauth/authorize?"), href
    assert page.text_content("#claude-redirect").endswith("/callback")
    back = approve(href)
    page.fill("#claude-code", back["code"] + "#not-this-login")
    page.click("#claude-submit")
    text_matches(page, "#claude-error", "another login")
    page.fill("#claude-code", back["code"] + "#" + back["state"])
    page.click("#claude-submit")
    credential = text_matches(page, "#claude-status", "^logged in as ", timeout=20000).removeprefix("logged in as ")
    assert credential.startswith("claude:claude-user-")
    assert "ready" in rows(page)[credential]

    # Once the account served a request, its windows show in the list.
    body = json.dumps({"model": "claude/claude-sonnet-4-5", "max_tokens": 16,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(server.url + "/v1/messages", data=body, headers={
        "x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    page.reload()
    page.wait_for_selector(f'#accounts tbody tr[data-id="{credential}"]')
    assert "5h: allowed, 25% used, resets " in rows(page)[credential]
