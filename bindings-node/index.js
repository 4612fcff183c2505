'use strict';
// The public JavaScript API of cliproxy, a thin layer over the native addon (`native.js`). The addon speaks
// JSON text and structured error messages; this file turns those into plain objects, `CliproxyError`s,
// `AbortSignal` handling and async iterators. `index.d.ts` types it; `index.mjs` re-exports it for `import`.

const native = require('./native.js');

/** Must match `ERROR_PREFIX` in src/error.rs. */
const ERROR_PREFIX = 'cliproxy-error:';

/** Every `code` a `CliproxyError` can have, one per kind of failure of the core. */
const ERROR_CODES = Object.freeze([
  'CONFIG',
  'AUTHENTICATION',
  'PERMISSION_DENIED',
  'INVALID_REQUEST',
  'MODEL_NOT_FOUND',
  'RATE_LIMITED',
  'QUOTA_EXCEEDED',
  'UPSTREAM',
  'TIMEOUT',
  'CANCELLED',
]);

/** A failure reported by cliproxy; `code` is stable and the fields are `null` where unknown. */
class CliproxyError extends Error {
  constructor(message, { code, status = null, retryAfter = null, credential = null, model = null, reason = null, fault = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'CliproxyError';
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
    this.credential = credential;
    this.model = model;
    this.reason = reason;
    this.fault = fault;
  }
}

/**
 * Turns an error thrown by the addon into a `CliproxyError` (other errors pass through). A cancellation
 * caused by `signal` carries the signal's reason as `cause`.
 */
function convert(err, signal) {
  if (!(err instanceof Error) || !err.message.startsWith(ERROR_PREFIX)) return err;
  const payload = JSON.parse(err.message.slice(ERROR_PREFIX.length));
  // What caused the error (a refused connection, say) arrives as text; it becomes the error's `cause`.
  const cause = payload.code === 'CANCELLED' && signal?.aborted
    ? signal.reason
    : payload.cause ? new Error(payload.cause) : undefined;
  return new CliproxyError(payload.message, { ...payload, cause });
}

/** Runs a synchronous addon call, converting what it throws. */
function sync(fn) {
  try {
    return fn();
  } catch (err) {
    throw convert(err);
  }
}

function cancelledError(signal) {
  return new CliproxyError('the request was cancelled by the caller', {
    code: 'CANCELLED',
    reason: 'cancelled',
    cause: signal?.reason,
  });
}

/** The request body as JSON text, with `stream` forced to what the method promises. */
function serialize(request, stream) {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    throw new TypeError('cliproxy: the request must be an object with `model` and `messages`');
  }
  if (stream) return JSON.stringify({ ...request, stream: true });
  return JSON.stringify(request.stream ? { ...request, stream: false } : request);
}

/** Extra request headers (e.g. `anthropic-beta`) as the string map the addon takes. */
function headerMap(headers) {
  if (headers == null) return null;
  const map = {};
  for (const [name, value] of Object.entries(headers)) map[name] = String(value);
  return map;
}

function checkSignal(signal) {
  if (signal != null && (typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function')) {
    throw new TypeError('cliproxy: `signal` must be an AbortSignal');
  }
}

/**
 * A streamed answer: an async iterator of the dialect's stream events (OpenAI chunks or Anthropic events),
 * as plain objects. The request starts at the first `next()`; breaking out of `for await`, `return()`, or
 * aborting the signal cancels the upstream request.
 */
class ReplyStream {
  #client;
  #dialect;
  #body;
  #headers;
  #signal;
  #cancel = new native.NativeCancel();
  #onAbort = null;
  #stream = null;
  #started = false;
  #done = false;
  #queue = [];
  #pos = 0;
  #chain = Promise.resolve();
  #credential = null;

  constructor(client, dialect, request, options = {}) {
    checkSignal(options.signal);
    this.#client = client;
    this.#dialect = dialect;
    this.#body = serialize(request, true);
    this.#headers = headerMap(options.headers);
    this.#signal = options.signal ?? null;
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  /** The id of the credential serving the stream, once it started. */
  get credential() {
    return this.#credential;
  }

  next() {
    // Calls are serialized so that a caller that does not await each `next()` still gets events in order.
    const result = this.#chain.then(() => this.#next());
    this.#chain = result.catch(() => {});
    return result;
  }

  async return(value) {
    this.#finish();
    return { value, done: true };
  }

  async throw(err) {
    this.#finish();
    throw err;
  }

  async #next() {
    if (!this.#done && this.#signal?.aborted) {
      // Events already received but not yet handed out are dropped too: an abort stops the iteration now.
      this.#finish();
      throw cancelledError(this.#signal);
    }
    for (;;) {
      if (this.#pos < this.#queue.length) return { value: this.#queue[this.#pos++], done: false };
      if (this.#done) return { value: undefined, done: true };
      try {
        if (!this.#started) {
          await this.#start();
          continue;
        }
        const batch = await this.#stream.next();
        if (batch === null) {
          this.#finish();
          continue;
        }
        this.#queue = batch.map((event) => JSON.parse(event.data));
        this.#pos = 0;
      } catch (err) {
        this.#finish();
        throw convert(err, this.#signal);
      }
    }
  }

  async #start() {
    this.#started = true;
    const signal = this.#signal;
    if (signal?.aborted) throw cancelledError(signal);
    if (signal) {
      this.#onAbort = () => this.#cancel.cancel();
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
    const reply = await this.#client.send(this.#dialect, this.#body, this.#headers, this.#cancel);
    if (this.#done) {
      // `return()` was called while the request was being sent: release what it produced.
      if (reply instanceof native.NativeStream) reply.close();
      return;
    }
    if (reply instanceof native.NativeStream) {
      this.#stream = reply;
      this.#credential = reply.credential;
    } else {
      // The core only answers a `"stream": true` request with JSON if it could not stream; yield that
      // answer as the single item rather than losing it.
      this.#credential = reply.credential;
      this.#finish();
      this.#queue = [JSON.parse(reply.body)];
    }
  }

  /** Ends the iteration and releases the upstream request and the abort listener. */
  #finish() {
    if (this.#done) return;
    this.#done = true;
    this.#queue = [];
    this.#pos = 0;
    this.#stream?.close();
    this.#cancel.cancel();
    if (this.#onAbort) this.#signal.removeEventListener('abort', this.#onAbort);
    this.#onAbort = null;
  }
}

/**
 * A login in progress. Device logins: show `verificationUri` and `userCode`, then await `wait()`.
 * Authorization-code logins (`redirectUri` set): send the user to `verificationUri`; the browser comes back to
 * `redirectUri`, where the login listens, or `complete(code)` takes the code by hand.
 */
class LoginFlow {
  #flow;

  constructor(flow) {
    this.#flow = flow;
    this.id = flow.id;
    this.provider = flow.provider;
    this.verificationUri = flow.verificationUri;
    this.verificationUriComplete = flow.verificationUriComplete;
    this.userCode = flow.userCode;
    this.expiresIn = flow.expiresIn;
    this.redirectUri = flow.redirectUri ?? null;
  }

  /** Hands an authorization-code login the code (`code#state`, or the callback address). */
  complete(code) {
    if (typeof code !== 'string') throw new TypeError('cliproxy: complete(code) takes the code as a string');
    try {
      this.#flow.complete(code);
    } catch (err) {
      throw convert(err);
    }
  }

  /** `pending`, `success` or `failed`. */
  get status() {
    return this.#flow.status;
  }

  /** Resolves with the new credential's id once the user approved. */
  async wait() {
    try {
      return await this.#flow.wait();
    } catch (err) {
      throw convert(err);
    }
  }
}

let nativeOf;

/** The cliproxy engine in-process: routing, failover, cooldowns, rate limits and dialect translation. */
class Client {
  #native;

  static {
    nativeOf = (client) => client.#native;
  }

  /**
   * @param config an object with the `config.yaml` keys, or the path of a YAML config file.
   */
  constructor(config) {
    if (config instanceof native.NativeClient) {
      this.#native = config;
    } else if (typeof config === 'string') {
      this.#native = sync(() => native.NativeClient.fromFile(config));
    } else if (config !== null && typeof config === 'object' && !Array.isArray(config)) {
      this.#native = sync(() => native.NativeClient.fromValue(config));
    } else {
      throw new TypeError('cliproxy: Client(config) takes a config object or the path of a YAML file');
    }
    for (const warning of this.#native.warnings) process.emitWarning(warning, 'CliproxyConfigWarning');
  }

  /** A client from YAML text with the `config.yaml` keys. */
  static fromYaml(text) {
    if (typeof text !== 'string') throw new TypeError('cliproxy: Client.fromYaml(text) takes a string');
    return new Client(sync(() => native.NativeClient.fromYaml(text)));
  }

  /** Configuration entries that were ignored (unknown keys and the like). */
  get warnings() {
    return this.#native.warnings;
  }

  /** An OpenAI Chat Completions request; resolves to the completion object. */
  chat(request, options) {
    return this.#json('openai', request, options);
  }

  /** An Anthropic Messages request; resolves to the message object. */
  messages(request, options) {
    return this.#json('anthropic', request, options);
  }

  /** A streamed OpenAI Chat Completions request: `for await (const chunk of client.chatStream(req))`. */
  chatStream(request, options) {
    return new ReplyStream(this.#native, 'openai', request, options);
  }

  /** A streamed Anthropic Messages request: `for await (const event of client.messagesStream(req))`. */
  messagesStream(request, options) {
    return new ReplyStream(this.#native, 'anthropic', request, options);
  }

  async #json(dialect, request, options = {}) {
    checkSignal(options.signal);
    const body = serialize(request, false);
    const headers = headerMap(options.headers);
    const signal = options.signal ?? null;
    if (signal?.aborted) throw cancelledError(signal);
    const cancel = new native.NativeCancel();
    const onAbort = () => cancel.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    let reply;
    try {
      reply = await this.#native.send(dialect, body, headers, cancel);
    } catch (err) {
      throw convert(err, signal);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (reply instanceof native.NativeStream) {
      // Unreachable while `serialize` turns streaming off; kept so a change there cannot leak a stream.
      reply.close();
      throw new CliproxyError('expected a complete answer but the core started a stream', { code: 'UPSTREAM' });
    }
    return JSON.parse(reply.body);
  }

  /** The models the configured credentials serve, with the providers serving each. */
  models() {
    return this.#native.models().map(({ id, providers }) => ({ id, providers }));
  }

  /** Active cooldowns, soonest first. */
  cooldowns() {
    return this.#native.cooldowns().map((c) => ({
      credential: c.credential,
      model: c.model ?? null,
      until: new Date(c.untilMs),
      reason: c.reason,
    }));
  }

  /**
   * Clears the cooldowns of one credential, one model, both, or (no argument) all of them; a whole
   * credential or full reset also re-enables disabled credentials. Returns how many entries were cleared.
   */
  resetCooldowns({ credential = null, model = null } = {}) {
    return this.#native.resetCooldowns(credential, model);
  }

  /** Per-credential request and token counters, with the provider's quota where it reports one. */
  usage() {
    return this.#native.usage().map((u) => ({
      credential: u.credential,
      provider: u.provider,
      requests: u.requests,
      failures: u.failures,
      inputTokens: u.inputTokens,
      outputTokens: u.outputTokens,
      quota: u.quota ?? null,
    }));
  }

  /** The configured and logged-in credentials (never their secrets). */
  credentials() {
    return this.#native.credentials().map((c) => ({
      id: c.id,
      provider: c.provider,
      priority: c.priority,
      state: c.state,
      stateReason: c.stateReason ?? null,
      expiresAt: c.expiresAtMs == null ? null : new Date(c.expiresAtMs),
    }));
  }

  /** Starts a login with `provider`; the new credential joins this client when it succeeds. */
  async login(provider, options = {}) {
    if (typeof provider !== 'string') throw new TypeError('cliproxy: login(provider) takes a provider name');
    try {
      return new LoginFlow(await this.#native.login(provider, options ?? {}));
    } catch (err) {
      throw convert(err);
    }
  }
}

/** A running reference server; it keeps the process alive until `close()`. */
class Server {
  #handle;
  #closed;

  constructor(handle, client) {
    this.#handle = handle;
    // A pending native promise keeps the event loop alive: the process runs until the server is closed.
    this.#closed = handle.closed();
    this.host = handle.host;
    this.port = handle.port;
    this.url = `http://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
    this.client = client;
  }

  /** Stops accepting, lets open requests finish for up to `drainMs` (default 10 s), then closes the rest. */
  async close({ drainMs } = {}) {
    await this.#handle.close(drainMs ?? null);
    await this.#closed;
  }
}

/**
 * Runs the reference HTTP server (OpenAI- and Anthropic-compatible endpoints) in this process.
 * `config` is a config object, a YAML file path, or a `Client` to share; `host` and `port` default to the
 * config's (`port: 0` picks a free port).
 */
async function serve(config, { host, port } = {}) {
  const client = config instanceof Client ? config : new Client(config);
  try {
    const handle = await native.serve(nativeOf(client), host ?? null, port ?? null);
    return new Server(handle, client);
  } catch (err) {
    throw convert(err);
  }
}

module.exports = { Client, CliproxyError, ERROR_CODES, serve };
