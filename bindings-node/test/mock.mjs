// Shared test support: the `cliproxy-mock` upstream as a subprocess, and config builders pointing at it.
// Not a test file itself (the `test` script runs `*.test.mjs` only).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const targetDir = process.env.CARGO_TARGET_DIR ?? path.resolve(here, '../../target');

/** A mock directive for the last user message. */
export const directive = (d) => 'mock:' + JSON.stringify(d);

/** Text that exercises every UTF-8 width: 2-byte Latin, 3-byte CJK and math, 4-byte emoji and flags. */
export const TEXT = 'Grüße, 世界! 👋🏽 café ∑ 🇩🇪 こんにちは 🧑‍💻';

/** The model names the configs below serve: one through each upstream dialect. */
export const OPENAI_MODEL = 'compat-gpt-4o';
export const CLAUDE_MODEL = 'claude-sonnet-4-5-20250929';

/** Starts `cliproxy-mock --port 0`; resolves once it printed where it listens. */
export async function startMock() {
  const bin = path.join(targetDir, 'debug', 'cliproxy-mock');
  const proc = spawn(bin, ['--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout });
    lines.once('line', (line) => {
      const m = /^listening on (http:\/\/\S+)$/.exec(line.trim());
      m ? resolve(m[1]) : reject(new Error(`cliproxy-mock said: ${line}`));
    });
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`cliproxy-mock (${bin}) exited with ${code}`)));
  });
  return {
    url,
    /** `{ total, cancelled, by_key }` as the mock counts them. */
    async hits() {
      const res = await fetch(`${url}/__mock/hits`);
      return res.json();
    },
    /** The requests the mock received, oldest first: `{ method, path, query, headers: [[name, value]], body }`. */
    async requests() {
      const res = await fetch(`${url}/__mock/requests`);
      return res.json();
    },
    async reset() {
      await fetch(`${url}/__mock/reset`, { method: 'POST' });
    },
    stop() {
      proc.kill('SIGTERM');
    },
  };
}

/**
 * A config object with one OpenAI-compatible upstream (`compat-gpt-4o`) and one Anthropic upstream, both
 * on the mock. `keys` are the OpenAI-compatible upstream's API keys; `extra` adds or overrides top-level keys.
 */
export function mockConfig(mockUrl, { keys = ['sk-compat-1'], claudeKeys = ['sk-ant-1'], ...extra } = {}) {
  return {
    'auth-dir': path.join(here, 'no-auth-dir'),
    'openai-compatibility': [
      {
        name: 'mockcompat',
        'base-url': `${mockUrl}/v1`,
        'api-key-entries': keys.map((k) => ({ 'api-key': k })),
        models: [{ name: 'gpt-4o', alias: OPENAI_MODEL }],
      },
    ],
    'claude-api-key': claudeKeys.map((k) => ({ 'api-key': k, 'base-url': mockUrl })),
    ...extra,
  };
}

/** Polls `check` until it returns true, failing after `ms`. */
export async function eventually(check, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
