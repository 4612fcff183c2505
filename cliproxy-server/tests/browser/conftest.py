"""Starts the mock upstream and the real server (Kiro and Claude hosts on the mock, a private HOME with a Kiro
IDE session, a private auth-dir) and a headless Chromium with a fresh profile."""
import json
import os
import sys
import tempfile
import urllib.request

import pytest

# binaries.py, shared with the other Python suites, lives in cliproxy-server/tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import binaries  # noqa: E402
from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
MGMT = "browser-mgmt-secret"
CLIENT_KEY = "browser-client-key"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


mock = pytest.fixture(scope="session")(binaries.mock)


def mock_requests(mock_url):
    with urllib.request.urlopen(mock_url + "/__mock/requests") as r:
        return json.load(r)


class Server:
    def __init__(self, mock_url):
        self.dir = tempfile.TemporaryDirectory()
        self.home = os.path.join(self.dir.name, "home")
        self.auth_dir = os.path.join(self.dir.name, "auths")
        cache = os.path.join(self.home, ".aws", "sso", "cache")
        os.makedirs(cache)
        # The Kiro IDE's session (a Google login), for the import button.
        with open(os.path.join(cache, "kiro-auth-token.json"), "w") as f:
            json.dump({"accessToken": "aoaSOCIAL-ide-access", "refreshToken": "aorAAAAAG-browser-ide-session",
                       "expiresAt": "2099-01-01T00:00:00.000Z", "authMethod": "social", "provider": "Google",
                       "profileArn": "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"}, f)
        config = f"""
port: 0
api-keys: ["{CLIENT_KEY}"]
remote-management: {{ secret-key: "{MGMT}" }}
auth-dir: "{self.auth_dir}"
kiro-endpoints:
  oidc-base-url: "{mock_url}/kiro/oidc/{{region}}"
  auth-base-url: "{mock_url}/kiro/auth/{{region}}"
  api-base-url: "{mock_url}/kiro/q/{{region}}"
  fallback-api-base-url: "{mock_url}/kiro/cw/{{region}}"
claude-endpoints:
  auth-base-url: "{mock_url}"
  token-url: "{mock_url}/v1/oauth/token"
  api-base-url: "{mock_url}"
"""
        path = os.path.join(self.dir.name, "config.yaml")
        with open(path, "w") as f:
            f.write(config)
        env = dict(os.environ, HOME=self.home)
        env.pop("CLIPROXY_API_KEY", None)
        self.proc, self.url = binaries.start("cliproxy-server", ["--config", path], env)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(15)
        self.dir.cleanup()


@pytest.fixture(scope="session")
def server(mock):
    s = Server(mock)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def playwright_instance():
    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(playwright_instance):
    """A fresh browser profile per test (no cookies carried over)."""
    with tempfile.TemporaryDirectory() as profile:
        ctx = playwright_instance.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield ctx
        ctx.close()


@pytest.fixture
def page(browser, server):
    """A page signed in through the management form."""
    page = browser.new_page()
    page.goto(server.url + "/v0/oauth/kiro")
    page.fill("#secret", MGMT)
    page.click("#login-button")
    page.wait_for_selector("#builder-id")
    return page
