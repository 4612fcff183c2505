// The Client against the mock upstream: both request dialects through both upstream dialects (same-dialect
// passthrough and translation), streaming split at every byte, tools, listings, and module loading.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Client, CliproxyError, ERROR_CODES } from 'cliproxy';
import { startMock, mockConfig, directive, TEXT, OPENAI_MODEL, CLAUDE_MODEL } from './mock.mjs';

const MODELS = [OPENAI_MODEL, CLAUDE_MODEL];
let mock;
let client;

before(async () => {
  mock = await startMock();
  client = new Client(mockConfig(mock.url));
});

after(() => mock.stop());

const user = (content) => [{ role: 'user', content }];

/** The assistant text of an Anthropic stream. */
async function anthropicText(events) {
  let text = '';
  for await (const ev of events) {
    if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
  }
  return text;
}

/** The assistant text of an OpenAI stream. */
async function openaiText(chunks) {
  let text = '';
  for await (const chunk of chunks) text += chunk.choices[0]?.delta?.content ?? '';
  return text;
}

for (const model of MODELS) {
  test(`chat() returns the completion object via ${model}`, async () => {
    const r = await client.chat({ model, messages: user(directive({ reply: TEXT })) });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, TEXT);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.ok(r.usage.completion_tokens > 0);
  });

  test(`messages() returns the message object via ${model}`, async () => {
    const r = await client.messages({ model, max_tokens: 256, messages: user(directive({ reply: TEXT })) });
    assert.equal(r.type, 'message');
    assert.equal(r.role, 'assistant');
    assert.deepEqual(r.content, [{ type: 'text', text: TEXT }]);
    assert.equal(r.stop_reason, 'end_turn');
  });

  test(`chatStream() split at every byte keeps multi-byte text whole via ${model}`, async () => {
    const stream = client.chatStream({ model, messages: user(directive({ reply: TEXT, chunk: 1 })) });
    assert.equal(stream[Symbol.asyncIterator](), stream);
    assert.equal(await openaiText(stream), TEXT);
    assert.match(stream.credential, /^(openai-compat|claude):/);
  });

  test(`messagesStream() split at every byte keeps multi-byte text whole via ${model}`, async () => {
    const events = [];
    const stream = client.messagesStream({ model, max_tokens: 256, messages: user(directive({ reply: TEXT, chunk: 1 })) });
    for await (const ev of stream) events.push(ev);
    assert.equal(events[0].type, 'message_start');
    assert.equal(events.at(-1).type, 'message_stop');
    assert.equal(await anthropicText(events), TEXT);
  });

  test(`streams cut at arbitrary offsets keep the text via ${model}`, async () => {
    const split = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377];
    const text = await openaiText(client.chatStream({ model, messages: user(directive({ reply: TEXT, split })) }));
    assert.equal(text, TEXT);
  });

  test(`tool calls, complete and streamed, in both dialects via ${model}`, async () => {
    const args = { city: 'Zürich 東京', days: 3, tags: ['☀️', 'ß'] };
    const d = directive({ tool_calls: [{ name: 'get_weather', arguments: args }], chunk: 1 });
    const openaiTools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }];
    const anthropicTools = [{ name: 'get_weather', input_schema: { type: 'object', properties: {} } }];

    const chat = await client.chat({ model, tools: openaiTools, messages: user(d) });
    const call = chat.choices[0].message.tool_calls[0];
    assert.equal(chat.choices[0].finish_reason, 'tool_calls');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), args);

    const msg = await client.messages({ model, max_tokens: 256, tools: anthropicTools, messages: user(d) });
    const use = msg.content.find((b) => b.type === 'tool_use');
    assert.equal(msg.stop_reason, 'tool_use');
    assert.equal(use.name, 'get_weather');
    assert.deepEqual(use.input, args);

    const calls = [];
    for await (const chunk of client.chatStream({ model, tools: openaiTools, messages: user(d) })) {
      for (const tc of chunk.choices[0]?.delta?.tool_calls ?? []) {
        calls[tc.index] ??= { name: '', args: '' };
        calls[tc.index].name += tc.function?.name ?? '';
        calls[tc.index].args += tc.function?.arguments ?? '';
      }
    }
    assert.equal(calls.length, 1);
    assert.equal(calls[0].name, 'get_weather');
    assert.deepEqual(JSON.parse(calls[0].args), args);

    let name = '';
    let partial = '';
    for await (const ev of client.messagesStream({ model, max_tokens: 256, tools: anthropicTools, messages: user(d) })) {
      if (ev.type === 'content_block_start' && ev.content_block.type === 'tool_use') name = ev.content_block.name;
      if (ev.type === 'content_block_delta' && ev.delta.type === 'input_json_delta') partial += ev.delta.partial_json;
    }
    assert.equal(name, 'get_weather');
    assert.deepEqual(JSON.parse(partial), args);
  });
}

test('thinking comes through as a thinking block or reasoning_content', async () => {
  for (const model of MODELS) {
    const d = directive({ thinking: 'erst denken, 先想', reply: 'done' });
    const m = await client.messages({ model, max_tokens: 64, messages: user(d) });
    assert.deepEqual(m.content.map((b) => [b.type, b.thinking ?? b.text]), [['thinking', 'erst denken, 先想'], ['text', 'done']]);
    const r = await client.chat({ model, messages: user(d) });
    assert.equal(r.choices[0].message.reasoning_content, 'erst denken, 先想');
    assert.equal(r.choices[0].message.content, 'done');
  }
});

test('request headers such as anthropic-beta reach the upstream', async () => {
  await mock.reset();
  const beta = 'interleaved-thinking-2025-05-14';
  await client.messages({ model: CLAUDE_MODEL, max_tokens: 16, messages: user('hi') }, { headers: { 'anthropic-beta': beta } });
  const [request] = await mock.requests();
  assert.equal(request.path, '/v1/messages');
  assert.deepEqual(request.headers.filter(([name]) => name === 'anthropic-beta'), [['anthropic-beta', beta]]);
  await assert.rejects(client.chat({ model: OPENAI_MODEL, messages: user('hi') }, { headers: { 'bad header': 'x' } }), { code: 'INVALID_REQUEST' });
});

test('a request that asks chat() to stream still gets the complete object', async () => {
  const r = await client.chat({ model: OPENAI_MODEL, stream: true, messages: user(directive({ reply: 'whole' })) });
  assert.equal(r.choices[0].message.content, 'whole');
});

test('models(), credentials() and usage() describe the configured pool', async () => {
  const ids = client.models().map((m) => m.id);
  assert.ok(ids.includes(OPENAI_MODEL) && ids.includes(CLAUDE_MODEL), ids.join(', '));
  assert.deepEqual(client.models().find((m) => m.id === OPENAI_MODEL).providers, ['openai-compat']);

  const creds = client.credentials();
  assert.deepEqual(creds.map((c) => c.id).sort(), ['claude:key-0', 'openai-compat:mockcompat-0']);
  assert.ok(creds.every((c) => c.state === 'ready' && c.stateReason === null && c.expiresAt === null));

  const fresh = new Client(mockConfig(mock.url));
  await fresh.chat({ model: OPENAI_MODEL, messages: user(directive({ reply: 'counted', usage: { input: 11, output: 7 } })) });
  const usage = fresh.usage().find((u) => u.credential === 'openai-compat:mockcompat-0');
  assert.deepEqual(
    { requests: usage.requests, failures: usage.failures, inputTokens: usage.inputTokens, outputTokens: usage.outputTokens },
    { requests: 1, failures: 0, inputTokens: 11, outputTokens: 7 },
  );
  assert.equal(usage.provider, 'openai-compat');
  assert.deepEqual(fresh.cooldowns(), []);
});

test('streamed usage is accounted even though [DONE] ends the iteration', async () => {
  const fresh = new Client(mockConfig(mock.url));
  const chunks = [];
  const req = { model: OPENAI_MODEL, stream_options: { include_usage: true }, messages: user(directive({ reply: 'x y z', usage: { input: 5, output: 3 } })) };
  for await (const chunk of fresh.chatStream(req)) chunks.push(chunk);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'), 'no [DONE] sentinel is yielded');
  const usage = fresh.usage().find((u) => u.credential === 'openai-compat:mockcompat-0');
  assert.equal(usage.outputTokens, 3);
});

test('Client.fromYaml() and a YAML file path build the same client', async (t) => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const yaml = `auth-dir: /nonexistent-cliproxy-test\nclaude-api-key:\n  - { api-key: sk-ant-yaml, base-url: "${mock.url}" }\n`;
  const fromText = Client.fromYaml(yaml);
  assert.deepEqual(fromText.credentials().map((c) => c.id), ['claude:key-0']);
  const dir = mkdtempSync(path.join(tmpdir(), 'cliproxy-node-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'config.yaml');
  writeFileSync(file, yaml);
  const fromFile = new Client(file);
  const r = await fromFile.messages({ model: CLAUDE_MODEL, max_tokens: 16, messages: user(directive({ reply: 'yaml' })) });
  assert.equal(r.content[0].text, 'yaml');
});

test('unknown config keys become warnings, not failures', () => {
  const c = new Client({ 'auth-dir': '/nonexistent-cliproxy-test', 'no-such-key': 1 });
  assert.equal(c.warnings.length, 1);
  assert.match(c.warnings[0], /no-such-key/);
});

test('bad arguments are TypeErrors before anything is sent', () => {
  assert.throws(() => new Client(42), TypeError);
  assert.throws(() => client.chatStream('hello'), TypeError);
  assert.throws(() => client.chatStream({ model: 'm', messages: [] }, { signal: {} }), TypeError);
  return assert.rejects(client.chat(null), TypeError);
});

test('login() with a provider that has no login rejects with INVALID_REQUEST', async () => {
  await assert.rejects(client.login('nope'), (err) => {
    assert.ok(err instanceof CliproxyError && err instanceof Error);
    assert.equal(err.code, 'INVALID_REQUEST');
    assert.match(err.message, /nope/);
    return true;
  });
});

test('require() and import give the same classes', () => {
  const require = createRequire(import.meta.url);
  const cjs = require('cliproxy');
  assert.equal(cjs.Client, Client);
  assert.equal(cjs.CliproxyError, CliproxyError);
  assert.equal(ERROR_CODES.length, 10);
});

test('requests never block the event loop', async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  try {
    await client.chat({ model: OPENAI_MODEL, messages: user(directive({ reply: 'slow', fault: { hang_ms: 300 } })) });
  } finally {
    clearInterval(timer);
  }
  assert.ok(ticks >= 10, `timers fired ${ticks} times during a 300 ms request`);
});
