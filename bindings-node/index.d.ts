// Type definitions of the cliproxy Node package (hand-written; they describe index.js).
//
// Request and response shapes are the OpenAI Chat Completions and Anthropic Messages wire formats. The
// interfaces below type the fields most programs read and allow every other field, so any valid request
// compiles; each method also takes a type parameter, so programs that use the official SDKs' types can
// name them instead (e.g. `client.chat<OpenAI.ChatCompletion>(req)`).

/// <reference types="node" />

/** The stable code of each kind of failure. */
export type ErrorCode =
  | 'CONFIG'
  | 'AUTHENTICATION'
  | 'PERMISSION_DENIED'
  | 'INVALID_REQUEST'
  | 'MODEL_NOT_FOUND'
  | 'RATE_LIMITED'
  | 'QUOTA_EXCEEDED'
  | 'UPSTREAM'
  | 'TIMEOUT'
  | 'CANCELLED';

/** Every `ErrorCode`, in a stable order. */
export const ERROR_CODES: readonly ErrorCode[];

/** A failure reported by cliproxy. Fields are `null` where they are unknown. */
export class CliproxyError extends Error {
  readonly name: 'CliproxyError';
  readonly code: ErrorCode;
  /** The upstream's HTTP status, where the failure came from an upstream answer (always set for `UPSTREAM`). */
  readonly status: number | null;
  /** Seconds until a retry can succeed (rounded up), for `RATE_LIMITED` and, where known, `QUOTA_EXCEEDED`. */
  readonly retryAfter: number | null;
  /** The id (`<provider>:<name>`) of the credential involved; never its secret. */
  readonly credential: string | null;
  /** The upstream model involved. */
  readonly model: string | null;
  /** A finer-grained code, as the HTTP server puts it in OpenAI error bodies (e.g. `model_cooldown`). */
  readonly reason: string | null;
  /** Whose fault the failure is: the caller's request or key, the upstream's, or cliproxy's own. */
  readonly fault: 'client' | 'upstream' | 'ours' | null;
  /** For `CANCELLED` caused by an `AbortSignal`: the signal's reason; otherwise what caused the failure (a
   *  refused connection, say), where known. */
  readonly cause?: unknown;
}

/**
 * The configuration: the keys of cliproxy's `config.yaml` (kebab-case, e.g. `claude-api-key`,
 * `openai-compatibility`, `request-retry`, `max-retry-interval`, `routing`, `timeouts`). `${NAME}` in string
 * values is taken from the environment. Unknown keys are reported in `Client.warnings`.
 */
export interface Config {
  host?: string;
  port?: number;
  'auth-dir'?: string;
  'api-keys'?: string[];
  'proxy-url'?: string;
  'request-retry'?: number;
  'max-retry-interval'?: number;
  'disable-cooling'?: boolean;
  routing?: { strategy?: 'round-robin' | 'fill-first' };
  timeouts?: { 'connect-seconds'?: number; 'first-byte-seconds'?: number; 'idle-seconds'?: number };
  'claude-api-key'?: Array<{ 'api-key': string; 'base-url'?: string; [key: string]: unknown }>;
  'openai-compatibility'?: Array<{
    name: string;
    'base-url': string;
    'api-key-entries'?: Array<{ 'api-key': string; 'proxy-url'?: string }>;
    models?: Array<{ name: string; alias?: string }>;
    [key: string]: unknown;
  }>;
  [key: string]: unknown;
}

/** Options of one request. */
export interface RequestOptions {
  /** Aborting it cancels the request (and its upstream call); the call rejects with `CANCELLED`. */
  signal?: AbortSignal;
  /** Extra request headers the providers forward where they matter (e.g. `anthropic-beta`). */
  headers?: Record<string, string>;
}

// ---- OpenAI Chat Completions ------------------------------------------------------------------------------

export interface ChatToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content?: string | null | Array<{ type: string; [key: string]: unknown }>;
  name?: string;
  tool_calls?: ChatToolCall[];
  tool_call_id?: string;
  [key: string]: unknown;
}

export interface ChatTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; [key: string]: unknown };
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  tools?: ChatTool[];
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  /** Set by the method: `chat()` never streams, `chatStream()` always does. */
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  [key: string]: unknown;
}

export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  [key: string]: unknown;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    message: { role: 'assistant'; content: string | null; tool_calls?: ChatToolCall[]; [key: string]: unknown };
    finish_reason: string | null;
    [key: string]: unknown;
  }>;
  usage?: ChatUsage;
  [key: string]: unknown;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    delta: {
      role?: 'assistant';
      content?: string | null;
      tool_calls?: Array<{
        index: number;
        id?: string;
        type?: 'function';
        function?: { name?: string; arguments?: string };
      }>;
      [key: string]: unknown;
    };
    finish_reason: string | null;
    [key: string]: unknown;
  }>;
  usage?: ChatUsage | null;
  [key: string]: unknown;
}

// ---- Anthropic Messages -----------------------------------------------------------------------------------

export type ContentBlock =
  | { type: 'text'; text: string; [key: string]: unknown }
  | { type: 'thinking'; thinking: string; signature?: string; [key: string]: unknown }
  | { type: 'tool_use'; id: string; name: string; input: unknown; [key: string]: unknown }
  | { type: string; [key: string]: unknown };

export interface MessageParam {
  role: 'user' | 'assistant';
  content: string | Array<{ type: string; [key: string]: unknown }>;
}

export interface MessagesRequest {
  model: string;
  max_tokens: number;
  messages: MessageParam[];
  system?: string | Array<{ type: 'text'; text: string; [key: string]: unknown }>;
  tools?: Array<{ name: string; description?: string; input_schema: Record<string, unknown>; [key: string]: unknown }>;
  temperature?: number;
  /** Set by the method: `messages()` never streams, `messagesStream()` always does. */
  stream?: boolean;
  [key: string]: unknown;
}

export interface MessagesUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  [key: string]: unknown;
}

export interface Message {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: ContentBlock[];
  stop_reason: string | null;
  stop_sequence: string | null;
  usage: MessagesUsage;
  [key: string]: unknown;
}

export type MessageStreamEvent =
  | { type: 'message_start'; message: Message }
  | { type: 'content_block_start'; index: number; content_block: ContentBlock }
  | {
      type: 'content_block_delta';
      index: number;
      delta:
        | { type: 'text_delta'; text: string }
        | { type: 'input_json_delta'; partial_json: string }
        | { type: 'thinking_delta'; thinking: string }
        | { type: 'signature_delta'; signature: string };
    }
  | { type: 'content_block_stop'; index: number }
  | { type: 'message_delta'; delta: { stop_reason: string | null; stop_sequence?: string | null }; usage: Partial<MessagesUsage> }
  | { type: 'message_stop' }
  | { type: 'ping' };

// ---- Client -----------------------------------------------------------------------------------------------

/**
 * A streamed answer: iterate it with `for await`. The request starts at the first `next()`; leaving the loop
 * (`break`, `return`, an exception) or aborting the signal cancels the upstream request. A failure after the
 * stream started is thrown from the loop as a `CliproxyError`.
 */
export interface ReplyStream<T> extends AsyncIterableIterator<T> {
  /** The id of the credential serving the stream; `null` until it started. */
  readonly credential: string | null;
  next(): Promise<IteratorResult<T, undefined>>;
  /** Stops the stream and cancels the upstream request. */
  return(value?: unknown): Promise<IteratorResult<T, undefined>>;
  [Symbol.asyncIterator](): ReplyStream<T>;
}

export interface ModelInfo {
  id: string;
  /** The providers serving it, e.g. `['claude']`. */
  providers: string[];
}

export interface CooldownInfo {
  credential: string;
  /** `null` when the whole credential cools down. */
  model: string | null;
  until: Date;
  reason: string;
}

export interface UsageInfo {
  credential: string;
  provider: string;
  requests: number;
  failures: number;
  inputTokens: number;
  outputTokens: number;
  /** The provider's own quota report, where it has one. */
  quota: unknown | null;
}

export interface CredentialInfo {
  id: string;
  provider: string;
  priority: number;
  state: 'ready' | 'needs_login' | 'disabled';
  stateReason: string | null;
  expiresAt: Date | null;
}

/**
 * A login in progress: a device login shows `userCode` to enter at `verificationUri`; an authorization-code
 * login (`redirectUri` set) sends the user to `verificationUri` and takes the code the browser comes back with.
 */
export interface LoginFlow {
  readonly id: string;
  readonly provider: string;
  /** Where the user approves the login. */
  readonly verificationUri: string;
  /** The same page with the code filled in, where the provider offers one. */
  readonly verificationUriComplete: string | null;
  /** The code the user enters there. */
  readonly userCode: string;
  /** Seconds until the code expires. */
  readonly expiresIn: number;
  /** Authorization-code logins: where the browser comes back with the code (the login listens there). */
  readonly redirectUri: string | null;
  /** Hands an authorization-code login the code (`code#state`, or the callback address); throws `CliproxyError`. */
  complete(code: string): void;
  readonly status: 'pending' | 'success' | 'failed';
  /** Resolves with the new credential's id once the user approved; rejects with a `CliproxyError`. */
  wait(): Promise<string>;
}

/** The cliproxy engine in-process: routing, failover, cooldowns, rate limits and dialect translation. */
export class Client {
  /**
   * @param config an object with the `config.yaml` keys, or the path of a YAML config file (read
   *   synchronously, once, with the credential files of `auth-dir`). Throws `CliproxyError` `CONFIG`.
   */
  constructor(config: Config | string);
  /** A client from YAML text with the `config.yaml` keys. */
  static fromYaml(text: string): Client;
  /** Configuration entries that were ignored (unknown keys and the like); also emitted as process warnings. */
  readonly warnings: string[];

  /** An OpenAI Chat Completions request; resolves to the completion. */
  chat<T = ChatCompletion>(request: ChatRequest, options?: RequestOptions): Promise<T>;
  /** An Anthropic Messages request; resolves to the message. */
  messages<T = Message>(request: MessagesRequest, options?: RequestOptions): Promise<T>;
  /** A streamed OpenAI Chat Completions request, yielding the chunks (without the closing `[DONE]`). */
  chatStream<T = ChatCompletionChunk>(request: ChatRequest, options?: RequestOptions): ReplyStream<T>;
  /** A streamed Anthropic Messages request, yielding the events. */
  messagesStream<T = MessageStreamEvent>(request: MessagesRequest, options?: RequestOptions): ReplyStream<T>;

  /** The models the configured credentials serve. */
  models(): ModelInfo[];
  /** Active cooldowns, soonest first. */
  cooldowns(): CooldownInfo[];
  /**
   * Clears the cooldowns of one credential, one model, both, or (no argument) all of them; a whole-credential
   * or full reset also re-enables disabled credentials. Returns how many entries were cleared.
   */
  resetCooldowns(filter?: { credential?: string | null; model?: string | null }): number;
  /** Per-credential request and token counters. */
  usage(): UsageInfo[];
  /** The configured and logged-in credentials (never their secrets). */
  credentials(): CredentialInfo[];
  /**
   * Starts a device-code login with `provider` (`options` are provider-specific); the new credential joins
   * this client when the user approves. Rejects with `INVALID_REQUEST` for a provider without login.
   */
  login(provider: string, options?: Record<string, unknown>): Promise<LoginFlow>;
}

/** A running reference server. Like Node's `http.Server`, it keeps the process alive until `close()`. */
export interface Server {
  /** The address it listens on, e.g. `127.0.0.1`. */
  readonly host: string;
  readonly port: number;
  /** `http://host:port`; the OpenAI base URL is `${url}/v1`. */
  readonly url: string;
  /** The client serving the requests (the one passed to `serve`, or the one built from its config). */
  readonly client: Client;
  /** Stops accepting, lets open requests finish for up to `drainMs` (default 10 s), then closes the rest. */
  close(options?: { drainMs?: number }): Promise<void>;
}

export interface ServeOptions {
  /** Default: the config's `host` (127.0.0.1). A non-loopback host needs `api-keys` in the config. */
  host?: string;
  /** Default: the config's `port` (8317); 0 picks a free port. */
  port?: number;
}

/** Runs the reference HTTP server (OpenAI- and Anthropic-compatible endpoints) in this process. */
export function serve(config: Config | string | Client, options?: ServeOptions): Promise<Server>;
