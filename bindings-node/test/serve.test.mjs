// serve(): the reference server in-process, answering the official `openai` npm SDK (only baseURL changed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import OpenAI from 'openai';
import { Client, serve } from 'cliproxy';
import { startMock, mockConfig, directive, TEXT, OPENAI_MODEL, CLAUDE_MODEL } from './mock.mjs';

let mock;

before(async () => {
  mock = await startMock();
});

after(() => mock.stop());

const user = (content) => [{ role: 'user', content }];

test('serve() answers the openai SDK, complete and streamed, through both upstreams', async (t) => {
  const server = await serve(mockConfig(mock.url), { host: '127.0.0.1', port: 0 });
  t.after(() => server.close());
  assert.equal(server.host, '127.0.0.1');
  assert.ok(Number.isInteger(server.port) && server.port > 0);
  assert.equal(server.url, `http://127.0.0.1:${server.port}`);
  assert.ok(server.client instanceof Client);

  const sdk = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused-on-loopback', maxRetries: 0 });
  const listed = (await sdk.models.list()).data.map((m) => m.id);
  assert.ok(listed.includes(OPENAI_MODEL) && listed.includes(CLAUDE_MODEL));

  for (const model of [OPENAI_MODEL, CLAUDE_MODEL]) {
    const r = await sdk.chat.completions.create({ model, messages: user(directive({ reply: TEXT })) });
    assert.equal(r.choices[0].message.content, TEXT);

    const stream = await sdk.chat.completions.create({ model, stream: true, messages: user(directive({ reply: TEXT, chunk: 1 })) });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, TEXT);
  }

  await assert.rejects(
    sdk.chat.completions.create({ model: 'no-such-model', messages: user('hi') }),
    (err) => err instanceof OpenAI.NotFoundError,
  );
  const usage = server.client.usage();
  assert.ok(usage.reduce((n, u) => n + u.requests, 0) >= 4);
});

test('serve() shares a Client and enforces its client API keys', async (t) => {
  const client = new Client(mockConfig(mock.url, { 'api-keys': ['node-client-key'] }));
  const server = await serve(client, { port: 0 });
  t.after(() => server.close());
  assert.equal(server.client, client);
  assert.equal(server.host, '127.0.0.1', 'the config default host');

  const denied = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(denied.chat.completions.create({ model: OPENAI_MODEL, messages: user('hi') }), (err) => err instanceof OpenAI.AuthenticationError);

  const sdk = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'node-client-key', maxRetries: 0 });
  const r = await sdk.chat.completions.create({ model: OPENAI_MODEL, messages: user(directive({ reply: 'shared' })) });
  assert.equal(r.choices[0].message.content, 'shared');
  assert.equal(client.usage().find((u) => u.credential === 'openai-compat:mockcompat-0').requests, 1);
});

test('close() stops the server and is idempotent', async () => {
  const server = await serve(mockConfig(mock.url), { port: 0 });
  const url = `${server.url}/v1/models`;
  assert.equal((await fetch(url)).status, 200);
  await server.close({ drainMs: 1000 });
  await server.close();
  await assert.rejects(fetch(url));
});

test('serve() refuses an address it cannot bind, with CONFIG', async (t) => {
  const first = await serve(mockConfig(mock.url), { port: 0 });
  t.after(() => first.close());
  await assert.rejects(serve(mockConfig(mock.url), { port: first.port }), { code: 'CONFIG' });
  await assert.rejects(serve(mockConfig(mock.url), { host: '0.0.0.0', port: 0 }), (err) => err.code === 'CONFIG' && /api-keys/.test(err.message));
});

test('a running server keeps the process alive until close()', async () => {
  const script = `
    const { serve } = require('cliproxy');
    serve({ 'auth-dir': '/nonexistent-cliproxy-test' }, { port: 0 }).then((server) => {
      console.log('up');
      if (process.argv[1] === 'close') setTimeout(() => server.close(), 300);
    });`;
  const run = (mode) =>
    new Promise((resolve) => {
      const cwd = new URL('..', import.meta.url);
      const child = spawn(process.execPath, ['-e', script, mode], { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
      const started = Date.now();
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      const timer = setTimeout(() => child.kill('SIGTERM'), 1500);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, out, ms: Date.now() - started });
      });
    });
  const [closing, running] = await Promise.all([run('close'), run('keep')]);
  assert.equal(closing.out.trim(), 'up');
  assert.equal(closing.code, 0, 'exits by itself once closed');
  assert.equal(running.out.trim(), 'up');
  assert.equal(running.signal, 'SIGTERM', 'still serving when killed');
});
