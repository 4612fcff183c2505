// The official `openai` npm SDK against the real server (only baseURL changed), with the mock upstream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
const target = process.env.CARGO_TARGET_DIR ?? path.resolve(here, '../../../../target');
const KEY = 'sdk-node-key';
const TEXT = 'Grüße, 世界! 👋🏽 café ∑ 🇩🇪';
const procs = [];
let client;
let dir;

function start(bin, args, env = process.env) {
  const p = spawn(path.join(target, 'debug', bin), args, { stdio: ['ignore', 'pipe', 'ignore'], env });
  procs.push(p);
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: p.stdout });
    rl.once('line', (line) => {
      const m = /^listening on (.*)$/.exec(line.trim());
      m ? resolve(m[1]) : reject(new Error(`${bin}: ${line}`));
    });
    p.once('exit', (code) => reject(new Error(`${bin} exited ${code}`)));
  });
}

const directive = (d) => 'mock:' + JSON.stringify(d);

before(async () => {
  const mock = await start('cliproxy-mock', ['--port', '0']);
  dir = mkdtempSync(path.join(tmpdir(), 'cliproxy-node-'));
  const config = path.join(dir, 'config.yaml');
  writeFileSync(config, `
port: 0
api-keys: ["${KEY}"]
claude-api-key: [{ api-key: sk-ant-node-1, base-url: "${mock}" }]
openai-compatibility:
  - { name: mockcompat, base-url: "${mock}/v1", api-key-entries: [{ api-key: sk-compat-1 }], models: [{ name: gpt-4o, alias: compat-gpt-4o }] }
`);
  const env = { ...process.env };
  delete env.CLIPROXY_API_KEY;
  const url = await start('cliproxy-server', ['--config', config], env);
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0 });
});

after(() => {
  for (const p of procs) p.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

for (const model of ['compat-gpt-4o', 'claude-sonnet-4-5-20250929']) {
  test(`non-stream text via ${model}`, async () => {
    const r = await client.chat.completions.create({ model, messages: [{ role: 'user', content: directive({ reply: TEXT }) }] });
    assert.equal(r.choices[0].message.content, TEXT);
  });

  test(`stream split at every byte via ${model}`, async () => {
    const stream = await client.chat.completions.create({
      model, stream: true, messages: [{ role: 'user', content: directive({ reply: TEXT, chunk: 1 }) }],
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, TEXT);
  });

  test(`tool call arrives whole via ${model}`, async () => {
    const args = { city: 'Zürich 東京', days: 3 };
    const stream = await client.chat.completions.create({
      model, stream: true,
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }],
      messages: [{ role: 'user', content: directive({ tool_calls: [{ name: 'get_weather', arguments: args }], chunk: 9 }) }],
    });
    let name = '';
    let argText = '';
    for await (const chunk of stream) {
      for (const tc of chunk.choices[0]?.delta?.tool_calls ?? []) {
        name += tc.function?.name ?? '';
        argText += tc.function?.arguments ?? '';
      }
    }
    assert.equal(name, 'get_weather');
    assert.deepEqual(JSON.parse(argText), args);
  });
}

// The Responses API (`client.responses`), as Codex CLI and agents use it.
const weatherTool = {
  type: 'function', name: 'get_weather', description: 'Weather',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

for (const model of ['compat-gpt-4o', 'claude-sonnet-4-5-20250929']) {
  test(`responses stream split at every byte via ${model}`, async () => {
    const stream = await client.responses.create({
      model, stream: true, input: [{ role: 'user', content: directive({ reply: TEXT, chunk: 1 }) }],
    });
    const events = [];
    for await (const event of stream) events.push(event);
    assert.equal(events[0].type, 'response.created');
    assert.equal(events.at(-1).type, 'response.completed');
    assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
    const text = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
    assert.equal(text, TEXT);
    assert.equal(events.at(-1).response.output[0].content[0].text, TEXT);
  });

  test(`responses function tool round trip via ${model}`, async () => {
    const args = { city: 'Zürich 東京' };
    const input = [{ role: 'user', content: directive({ tool_calls: [{ name: 'get_weather', arguments: args }], chunk: 9 }) }];
    const stream = await client.responses.create({ model, stream: true, tools: [weatherTool], input });
    let argText = '';
    let done;
    for await (const event of stream) {
      if (event.type === 'response.function_call_arguments.delta') argText += event.delta;
      if (event.type === 'response.completed') done = event.response;
    }
    assert.deepEqual(JSON.parse(argText), args);
    const call = done.output.find((item) => item.type === 'function_call');
    assert.equal(call.name, 'get_weather');
    // The whole conversation goes back with the call's output: the proxy keeps no state.
    const next = [...input, ...done.output,
      { type: 'function_call_output', call_id: call.call_id, output: directive({ reply: 'It is 21°C.' }) }];
    const r = await client.responses.create({ model, tools: [weatherTool], input: next });
    assert.equal(r.output_text, 'It is 21°C.');
  });
}

test('unknown model is NotFoundError', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e instanceof OpenAI.NotFoundError,
  );
});
