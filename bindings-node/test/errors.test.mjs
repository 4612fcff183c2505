// Every error code the package promises, produced by real failures (mock faults, bad configs, aborts), with
// the fields a caller acts on. Each test builds its own Client so cooldowns never leak between tests.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client, CliproxyError, ERROR_CODES } from 'cliproxy';
import { startMock, mockConfig, directive, OPENAI_MODEL, CLAUDE_MODEL } from './mock.mjs';

let mock;

before(async () => {
  mock = await startMock();
});

after(() => mock.stop());

const user = (content) => [{ role: 'user', content }];

/** Asserts that `promise` rejects with a CliproxyError of `code` and returns it for further checks. */
async function rejectsWith(promise, code) {
  let caught;
  await assert.rejects(promise, (err) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof CliproxyError, `expected a CliproxyError, got ${caught?.stack ?? caught}`);
  assert.ok(caught instanceof Error);
  assert.equal(caught.name, 'CliproxyError');
  assert.equal(caught.code, code, caught.message);
  assert.ok(ERROR_CODES.includes(caught.code));
  return caught;
}

function faulty(fault, model = OPENAI_MODEL, extra = {}) {
  const client = new Client(mockConfig(mock.url, { 'request-retry': 0, ...extra }));
  return client.chat({ model, messages: user(directive({ fault })) });
}

test('CONFIG: a config that does not parse', () => {
  assert.throws(() => new Client({ 'request-retry': 'many' }), (err) => {
    assert.ok(err instanceof CliproxyError);
    assert.equal(err.code, 'CONFIG');
    return true;
  });
  assert.throws(() => new Client('/nonexistent/cliproxy/config.yaml'), { code: 'CONFIG' });
  assert.throws(() => Client.fromYaml('port: [unclosed'), { code: 'CONFIG' });
});

test('AUTHENTICATION: the upstream rejects the key', async () => {
  for (const model of [OPENAI_MODEL, CLAUDE_MODEL]) {
    const err = await rejectsWith(faulty({ kind: 'invalid_key' }, model), 'AUTHENTICATION');
    assert.equal(err.status, 401);
    assert.match(err.credential, /^(openai-compat|claude):/);
  }
});

test('PERMISSION_DENIED: the upstream answers 403', async () => {
  const err = await rejectsWith(faulty({ status: 403 }), 'PERMISSION_DENIED');
  assert.equal(err.status, 403);
});

test('INVALID_REQUEST: the upstream answers 400, or the body is not a chat request', async () => {
  const err = await rejectsWith(faulty({ status: 400 }), 'INVALID_REQUEST');
  assert.equal(err.status, 400);
  const client = new Client(mockConfig(mock.url));
  await rejectsWith(client.chat({ messages: user('no model') }), 'INVALID_REQUEST');
});

test('MODEL_NOT_FOUND: no credential serves the model', async () => {
  const client = new Client(mockConfig(mock.url));
  const err = await rejectsWith(client.chat({ model: 'no-such-model', messages: user('hi') }), 'MODEL_NOT_FOUND');
  assert.equal(err.model, 'no-such-model');
  assert.equal(err.credential, null);
});

test('RATE_LIMITED with retryAfter when every key is cooling down', async () => {
  const keys = ['sk-rl-1', 'sk-rl-2'];
  const client = new Client(mockConfig(mock.url, { keys, 'max-retry-interval': 0 }));
  const limited = { kind: 'rate_limit', retry_after: '30' };
  const req = { model: OPENAI_MODEL, messages: user(directive({ per_key: { [keys[0]]: limited, [keys[1]]: limited } })) };
  await mock.reset();

  const first = await rejectsWith(client.chat(req), 'RATE_LIMITED');
  assert.equal(first.retryAfter, 30);
  assert.equal(first.status, 429);
  assert.equal(first.model, 'gpt-4o');
  const hits = await mock.hits();
  assert.deepEqual([hits.by_key[keys[0]], hits.by_key[keys[1]]], [1, 1], 'both keys were tried');

  // Both keys now cool down: the next request fails at once, without touching the network.
  const second = await rejectsWith(client.chat(req), 'RATE_LIMITED');
  assert.ok(second.retryAfter > 0 && second.retryAfter <= 30, `retryAfter ${second.retryAfter}`);
  assert.equal(second.reason, 'model_cooldown');
  assert.equal((await mock.hits()).total, 2);

  const streamed = client.chatStream(req);
  await rejectsWith(streamed.next(), 'RATE_LIMITED');

  const cooldowns = client.cooldowns();
  assert.deepEqual(cooldowns.map((c) => c.credential).sort(), ['openai-compat:mockcompat-0', 'openai-compat:mockcompat-1']);
  for (const c of cooldowns) {
    assert.ok(c.until instanceof Date && c.until > new Date(), String(c.until));
    assert.equal(c.model, 'gpt-4o');
  }
  assert.equal(client.resetCooldowns({ credential: 'openai-compat:mockcompat-0' }), 1);
  assert.equal(client.cooldowns().length, 1);
  const ok = await client.chat({ model: OPENAI_MODEL, messages: user(directive({ reply: 'back' })) });
  assert.equal(ok.choices[0].message.content, 'back');
  assert.equal(client.resetCooldowns(), 1);
});

test('QUOTA_EXCEEDED: the account is out of credit', async () => {
  for (const model of [OPENAI_MODEL, CLAUDE_MODEL]) {
    const err = await rejectsWith(faulty({ kind: 'quota' }, model), 'QUOTA_EXCEEDED');
    assert.ok(err.retryAfter === null || err.retryAfter > 0);
  }
});

test('QUOTA_EXCEEDED carries retryAfter when the upstream says when it resets', async () => {
  const err = await rejectsWith(faulty({ status: 402, headers: { 'retry-after': '120' } }), 'QUOTA_EXCEEDED');
  assert.equal(err.retryAfter, 120);
});

test('UPSTREAM with the status of a failing upstream', async () => {
  const err = await rejectsWith(faulty({ kind: 'server_error' }), 'UPSTREAM');
  assert.equal(err.status, 500);
  const overloaded = await rejectsWith(faulty({ kind: 'overloaded' }, CLAUDE_MODEL), 'UPSTREAM');
  assert.equal(overloaded.status, 529);
});

test('UPSTREAM when the stream fails after it started', async () => {
  for (const fault of [{ stream_error_after: 2 }, { cut_after: 2 }]) {
    for (const model of [OPENAI_MODEL, CLAUDE_MODEL]) {
      const client = new Client(mockConfig(mock.url));
      const seen = [];
      const stream = client.chatStream({ model, messages: user(directive({ reply: 'one two three four five six', chunk: 1, fault })) });
      const err = await rejectsWith((async () => { for await (const chunk of stream) seen.push(chunk); })(), 'UPSTREAM');
      assert.ok(seen.length >= 1, `${JSON.stringify(fault)} via ${model}: events before the failure`);
      assert.match(err.credential ?? stream.credential, /^(openai-compat|claude):/);
      const after = await stream.next();
      assert.equal(after.done, true, 'a failed stream stays finished');
    }
  }
});

test('TIMEOUT when the upstream does not answer in time', async () => {
  const started = Date.now();
  const err = await rejectsWith(faulty({ hang_ms: 5000 }, OPENAI_MODEL, { timeouts: { 'first-byte-seconds': 1 } }), 'TIMEOUT');
  assert.ok(Date.now() - started < 4000, 'gave up after the first-byte timeout');
  assert.match(err.message, /first-byte/);
});

test('CANCELLED when the signal aborts a pending request', async () => {
  const client = new Client(mockConfig(mock.url));
  const controller = new AbortController();
  const pending = client.chat({ model: OPENAI_MODEL, messages: user(directive({ fault: { hang_ms: 5000 } })) }, { signal: controller.signal });
  const reason = new Error('user gave up');
  setTimeout(() => controller.abort(reason), 100);
  const started = Date.now();
  const err = await rejectsWith(pending, 'CANCELLED');
  assert.ok(Date.now() - started < 2000);
  assert.equal(err.cause, reason);

  await rejectsWith(client.messages({ model: CLAUDE_MODEL, max_tokens: 8, messages: user('hi') }, { signal: AbortSignal.abort() }), 'CANCELLED');
});

test('an unreachable upstream is the upstream\'s fault and keeps what caused it', async () => {
  const net = await import('node:net');
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
  const client = new Client({
    'openai-compatibility': [{ name: 'dead', 'base-url': `http://127.0.0.1:${port}/v1`, models: [{ name: 'm' }] }],
  });
  const err = await rejectsWith(client.chat({ model: 'm', messages: user('hi') }), 'UPSTREAM');
  assert.equal(err.fault, 'upstream');
  assert.ok(err.cause instanceof Error && err.cause.message.length > 0, String(err.cause));
  const bad = await rejectsWith(client.chat({ model: '', messages: user('hi') }), 'INVALID_REQUEST');
  assert.equal(bad.fault, 'client');
  assert.equal(bad.cause, undefined);
});
