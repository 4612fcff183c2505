// Claude's authorization-code login from Node against the mock upstream: the login listens for the browser's
// return on its callback port, or takes the code pasted by hand; the new account serves at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, CliproxyError } from 'cliproxy';
import { startMock, directive } from './mock.mjs';

let mock;
let dir;

before(async () => {
  mock = await startMock();
  dir = mkdtempSync(path.join(tmpdir(), 'cliproxy-login-'));
});

after(() => {
  mock.stop();
  rmSync(dir, { recursive: true, force: true });
});

const claudeClient = () =>
  new Client({
    'auth-dir': dir,
    'claude-endpoints': {
      'auth-base-url': mock.url,
      'token-url': `${mock.url}/v1/oauth/token`,
      'api-base-url': mock.url,
    },
  });

/** Where a browser that approved is sent back to (the redirect is read, not followed). */
async function approve(authorizeUrl) {
  const r = await fetch(authorizeUrl, { redirect: 'manual' });
  assert.equal(r.status, 302);
  return r.headers.get('location');
}

test('login("claude") finishes when the browser comes back to its callback', async () => {
  const client = claudeClient();
  const flow = await client.login('claude', { callback_port: 0 });
  assert.equal(flow.provider, 'claude');
  assert.equal(flow.userCode, '');
  assert.ok(flow.verificationUri.startsWith(`${mock.url}/oauth/authorize?`), flow.verificationUri);
  assert.match(flow.redirectUri, /^http:\/\/localhost:\d+\/callback$/);
  const back = await approve(flow.verificationUri);
  assert.ok(back.startsWith(flow.redirectUri), back);
  const page = await fetch(back);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /Logged in/);
  const id = await flow.wait();
  assert.match(id, /^claude:claude-user-/);
  assert.ok(existsSync(path.join(dir, `${id.slice('claude:'.length)}.json`)));
  const r = await client.messages({
    model: 'claude-sonnet-4-5',
    max_tokens: 32,
    messages: [{ role: 'user', content: directive({ reply: 'subscribed' }) }],
  });
  assert.equal(r.content[0].text, 'subscribed');
});

test('login("claude") takes a pasted code#state', async () => {
  const client = claudeClient();
  const flow = await client.login('claude', { callback_port: 0 });
  const q = new URL(await approve(flow.verificationUri)).searchParams;
  assert.throws(() => flow.complete(`${q.get('code')}#not-this-login`), (err) => {
    assert.ok(err instanceof CliproxyError);
    assert.equal(err.code, 'INVALID_REQUEST');
    assert.match(err.message, /another login/);
    return true;
  });
  flow.complete(`${q.get('code')}#${q.get('state')}`);
  assert.match(await flow.wait(), /^claude:claude-user-/);
  assert.equal(flow.status, 'success');
});
