"""The Kiro page in headless Chromium: the management form, a Builder ID login from the button to a listed
account, an Identity Center start, the paste-token form, import from the Kiro IDE and refresh-all."""
import re

from playwright.sync_api import expect

from conftest import MGMT, mock_requests


def text_matches(page, selector, pattern, timeout=10000):
    """Waits for the element's text to match (polled by Playwright, so the page's CSP needs no eval)."""
    expect(page.locator(selector)).to_have_text(re.compile(pattern, re.S), timeout=timeout)
    return page.text_content(selector)


def rows(page):
    expect(page.locator("#accounts tbody tr").first).to_be_attached()
    return {tr.get_attribute("data-id"): tr.inner_text() for tr in page.query_selector_all("#accounts tbody tr")}


def test_management_form_rejects_a_wrong_key_and_accepts_the_right_one(browser, server):
    page = browser.new_page()
    page.goto(server.url + "/v0/oauth/kiro")
    assert page.query_selector("#builder-id") is None
    page.fill("#secret", "not-the-key")
    page.click("#login-button")
    page.wait_for_selector("#login-message")
    assert "Wrong management key" in page.text_content("#login-message")
    page.fill("#secret", MGMT)
    page.click("#login-button")
    page.wait_for_selector("#builder-id")
    cookies = {c["name"]: c for c in browser.cookies()}
    assert cookies["cliproxy_mgmt"]["httpOnly"] is True
    # The cookie is invisible to scripts.
    assert "cliproxy_mgmt" not in page.evaluate("document.cookie")


def test_builder_id_login_from_the_button_to_a_listed_account(page):
    page.click("#builder-id")
    page.wait_for_selector("#login-panel:not([hidden])")
    code = page.text_content("#user-code")
    assert len(code) >= 8
    assert page.get_attribute("#verification-link", "href").startswith("https://")
    status = text_matches(page, "#login-status", "^logged in as ", timeout=20000)
    credential = status.removeprefix("logged in as ").strip()
    assert credential.startswith("kiro:kiro-builder-id")
    listed = rows(page)
    assert credential in listed
    assert "ready" in listed[credential]


def test_identity_center_start_uses_the_start_url_and_region(page, mock):
    page.fill("#start-url", "https://acme.awsapps.com/start")
    page.fill("#region", "eu-west-1")
    page.click("#idc-start")
    page.wait_for_selector("#login-panel:not([hidden])")
    assert page.text_content("#user-code")
    started = [r for r in mock_requests(mock) if r["path"] == "/kiro/oidc/eu-west-1/device_authorization"]
    assert started and '"startUrl":"https://acme.awsapps.com/start"' in started[-1]["body"]
    assert text_matches(page, "#login-status", "^logged in as ", timeout=20000).startswith("logged in as kiro:kiro-idc-")


def test_identity_center_needs_a_start_url(page):
    page.fill("#start-url", "")
    page.click("#idc-start")
    text_matches(page, "#login-error", "start URL")


def test_paste_token_form(page):
    page.fill("#refresh-token", "aorAAAAAG-invalid-browser-paste")
    page.click("#add-token")
    text_matches(page, "#token-result", "invalid_grant")
    page.fill("#refresh-token", "aorAAAAAGbrowser-pasted-good-token")
    page.click("#add-token")
    credential = text_matches(page, "#token-result", "^added ").removeprefix("added ").strip()
    assert credential in rows(page)
    assert page.input_value("#refresh-token") == ""


def test_import_from_the_ide_and_refresh_all(page):
    page.click("#import-ide")
    result = text_matches(page, "#import-result", ".+")
    assert result.startswith("imported ") and "kiro-social" in result, result
    assert any(i.startswith("kiro:kiro-social") for i in rows(page))
    page.click("#refresh-all")
    text_matches(page, "#refresh-result", "^refreshed")
    assert page.get_attribute("#refresh-result", "class") == "ok", page.text_content("#refresh-result")
