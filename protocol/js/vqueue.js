// vqueue browser client: join a queue, watch your place live, leave. One ES module, no
// dependencies; served by every vqueue server at /static/vqueue.js. Reference: docs/js-client.md.
//
//   import { Client } from "https://queue.example.com/static/vqueue.js";
//   const vq = new Client({ baseUrl: "https://queue.example.com" });
//   const ticket = await vq.join("front-desk", { name: "Ann" });
//   const watch = vq.watch(ticket.token);
//   watch.addEventListener("position", (e) => show(e.detail.position, e.detail.eta_s));

export const SUBPROTOCOL = "vq1.json";
// Statuses after which a ticket's watch ends. `no_show` is not one: a no-show ticket can be put
// back in line by staff (requeue) within 24 h, so its page keeps watching. `transferred` ends a
// watch only when no `moved` message follows it (a `moved` is followed to the new ticket).
export const FINAL_STATUSES = Object.freeze(["served", "left", "removed", "transferred"]);

// Close codes after which reconnecting cannot help: the server refused the token or a message
// (1008), or the client sent something it cannot read (1003, 1007, 1009).
const FINAL_CLOSE_CODES = new Set([1003, 1007, 1008, 1009]);
const STORAGE_PREFIX = "vqueue:ticket:";

/** An HTTP answer that was not 2xx: `status`, the contract's error `code` and `message`. */
export class VQueueError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.name = "VQueueError";
    this.status = status;
    this.code = code;
  }
}

/** Milliseconds to wait before reconnect attempt `attempt` (0-based): "full jitter", a uniform
 * draw below min(capMs, baseMs * 2^attempt), so a crowd of clients does not return in step. */
export function backoffDelay(attempt, { baseMs = 250, capMs = 10_000 } = {}, random = Math.random) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** Whether a server message with `seq` is new enough to act on, given the last seq seen.
 * The first message of each connection is the ticket's state at that moment (contract:
 * state at watch), so it is always taken: it can only be lower if the server's live store
 * was rebuilt, and then it is the truth. */
export function isFresh(seq, lastSeq, firstOfConnection) {
  if (typeof seq !== "number" || lastSeq === null || firstOfConnection) return true;
  return seq >= lastSeq;
}

/** A random Idempotency-Key (works outside secure contexts, unlike crypto.randomUUID). */
export function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** HTTP calls to one vqueue server. `baseUrl` defaults to the page's own origin. */
export class Client {
  constructor({ baseUrl = globalThis.location?.origin, fetch = globalThis.fetch } = {}) {
    if (!baseUrl) throw new TypeError("vqueue: baseUrl is required outside a browser page");
    this.baseUrl = String(baseUrl).replace(/\/+$/, "");
    this._fetch = fetch.bind(globalThis);
  }

  /** Any vqueue HTTP call; resolves to the JSON answer (null for 204), rejects with
   * VQueueError for a 4xx/5xx and with the fetch error when the server is unreachable. */
  async request(method, path, { token, body, idempotencyKey, signal } = {}) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const init = { method, headers, signal, cache: "no-store" };
    if (body !== undefined) init.body = JSON.stringify(body);
    const response = await this._fetch(this.baseUrl + path, init);
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = data?.error ?? {};
      throw new VQueueError(response.status, error.code ?? "http_error", error.message);
    }
    return data;
  }

  /** Join `queue`: {ticket_id, token, queue, status, position, number, waiting}. A retry with
   * the same idempotencyKey returns the same ticket instead of a second one. */
  join(queue, { name, idempotencyKey = newIdempotencyKey() } = {}) {
    const body = name ? { name } : {};
    return this.request("POST", `/v1/queues/${enc(queue)}/tickets`, { body, idempotencyKey });
  }

  /** The ticket's current state: {ticket_id, queue, status, position, number, name, counter}. */
  ticket(ticketId, token) {
    return this.request("GET", `/v1/tickets/${enc(ticketId)}`, { token });
  }

  leave(ticketId, token) {
    return this.request("DELETE", `/v1/tickets/${enc(ticketId)}`, { token });
  }

  /** How to reach this ticket's customer when the page sleeps: `contact` is {email?, phone?,
   * push?} (`push` a PushSubscription's toJSON()); it replaces the ticket's earlier contact. */
  setContact(ticketId, token, contact) {
    return this.request("PUT", `/v1/tickets/${enc(ticketId)}/contact`, { token, body: contact });
  }

  /** Forget every way of reaching this ticket's customer. */
  removeContact(ticketId, token) {
    return this.request("DELETE", `/v1/tickets/${enc(ticketId)}/contact`, { token });
  }

  /** The deployment's VAPID public key: {public_key}, for `applicationServerKey`. */
  pushKey() {
    return this.request("GET", "/v1/push/key");
  }

  /** The public queue summary: {queue, name, state, waiting}. */
  queue(queue) {
    return this.request("GET", `/v1/queues/${enc(queue)}`);
  }

  /** Start watching a ticket live; see Watch. */
  watch(token, options = {}) {
    return new Watch(token, { baseUrl: this.baseUrl, ...options }).start();
  }

  /** Staff: the whole line of `queue`, live ("line" events); `key` is a staff key. */
  watchQueue(queue, key, options = {}) {
    const request = { type: "watch_queue", queue, key };
    return new ViewWatch(request, { baseUrl: this.baseUrl, ...options }).start();
  }

  /** A display board of `queue`, live ("board" events); no key needed. */
  watchBoard(queue, options = {}) {
    const request = { type: "watch_board", queue };
    return new ViewWatch(request, { baseUrl: this.baseUrl, ...options }).start();
  }
}

/** One live WebSocket subscription that reconnects with jittered backoff until it ends.
 * Subclasses say what to send first (`_request()`) and when the subscription is over.
 *
 * Events (CustomEvent, payload in `detail`): each server message by its `type`, "state"
 * ({state, attempt, delayMs}), "error" (the server's error message) and "end" ({reason,
 * status?, code?}). `state` is "idle", "connecting", "live", "reconnecting" or "ended";
 * `latest` is the last message acted on, `seq` its seq. */
class LiveSocket extends EventTarget {
  constructor(options = {}) {
    super();
    const base = options.baseUrl ?? globalThis.location?.origin;
    this.url = `${String(base).replace(/\/+$/, "").replace(/^http/, "ws")}/v1/ws`;
    this.options = {
      baseMs: 250,
      capMs: 10_000,
      stableMs: 5_000, // a connection live this long resets the backoff
      connectTimeoutMs: 10_000, // no state this long after opening: try again
      WebSocket: globalThis.WebSocket,
      random: Math.random,
      ...options,
    };
    this.state = "idle";
    this.attempt = 0;
    this.seq = null;
    this.latest = null;
    this._ws = null;
    this._starting = false;
    this._first = true;
    this._finished = null;
    this._lastError = null;
    this._timers = {};
    this._wake = () => this.retryNow();
    this._onVisible = () => document.visibilityState === "visible" && this.retryNow();
  }

  /** Connect; the first event comes after the current task, so listeners added right after
   * `start()` (or `client.watch()`) see every event, "connecting" included. */
  start() {
    if (this.state !== "idle" || this._starting) return this;
    this._starting = true;
    queueMicrotask(() => {
      if (this.state !== "idle") return; // closed before it began
      globalThis.addEventListener?.("online", this._wake);
      globalThis.document?.addEventListener("visibilitychange", this._onVisible);
      this._connect();
    });
    return this;
  }

  /** Reconnect now instead of waiting out the backoff (e.g. the network came back). */
  retryNow() {
    if (this.state !== "reconnecting" || this._ws !== null) return;
    this._clear("retry");
    this._connect();
  }

  /** Stop for good (a watched ticket stays in line). */
  close() {
    this._end({ reason: "closed" });
  }

  on(type, listener) {
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  _connect() {
    if (this.state === "idle") this._setState("connecting");
    let ws;
    try {
      ws = new this.options.WebSocket(this.url, SUBPROTOCOL);
    } catch {
      this._closed(1006); // refused before any connection (e.g. a blocked URL): retry later
      return;
    }
    this._ws = ws;
    this._first = true;
    this._lastError = null;
    const watch = JSON.stringify(this._request());
    // Events of a socket that was replaced (timed out, closed by us) are ignored.
    ws.onopen = () => ws === this._ws && ws.send(watch);
    ws.onmessage = (event) => ws === this._ws && this._receive(event.data);
    ws.onclose = (event) => ws === this._ws && this._closed(event.code);
    const timeoutMs = this.options.connectTimeoutMs;
    this._timers.connect = setTimeout(() => ws === this._ws && ws.close(), timeoutMs);
  }

  _receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message === null || typeof message !== "object") return;
    if (message.type === "error") {
      this._lastError = message;
      this._emit("error", message);
      return;
    }
    if (!isFresh(message.seq, this.seq, this._first)) return;
    if (this._first) {
      this._first = false;
      this._clear("connect");
      this._timers.stable = setTimeout(() => (this.attempt = 0), this.options.stableMs);
      this._setState("live");
    }
    if (typeof message.seq === "number") this.seq = message.seq;
    this.latest = message;
    this._note(message);
    this._emit(message.type, message);
  }

  /** A message acted on (subclasses track what ends the subscription). */
  _note(_message) {}

  /** Called when a socket closed; true when the subclass took over (ended or reconnected). */
  _closedFinally() {
    return false;
  }

  _closed(code) {
    this._ws = null;
    this._clear("connect");
    this._clear("stable");
    if (this._closedFinally()) {
      // ended, or following a moved ticket
    } else if (FINAL_CLOSE_CODES.has(code)) {
      this._end({ reason: this._lastError?.code ?? "refused", code });
    } else {
      const delayMs = backoffDelay(this.attempt, this.options, this.options.random);
      this.attempt += 1;
      this._timers.retry = setTimeout(() => {
        delete this._timers.retry;
        this._connect();
      }, delayMs);
      this._setState("reconnecting", delayMs);
    }
  }

  _end(detail) {
    if (this.state === "ended") return;
    for (const name of Object.keys(this._timers)) this._clear(name);
    globalThis.removeEventListener?.("online", this._wake);
    globalThis.document?.removeEventListener("visibilitychange", this._onVisible);
    const ws = this._ws;
    this._ws = null;
    if (ws !== null) ws.close(1000);
    this._setState("ended");
    this._emit("end", detail);
  }

  _setState(state, delayMs = 0) {
    if (state === this.state && state !== "reconnecting") return;
    this.state = state;
    this._emit("state", { state, attempt: this.attempt, delayMs });
  }

  _clear(name) {
    clearTimeout(this._timers[name]);
    delete this._timers[name];
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** A live watch of one ticket over the WebSocket, reconnecting until the ticket is finished.
 *
 * Events: "position", "called" (with `recall: true` when staff call it again), "status",
 * "queue" (the queue's state: open, paused, closed) and "moved" (the ticket was transferred:
 * the watch follows it by itself, `token` and `ticketId` change), plus LiveSocket's. */
export class Watch extends LiveSocket {
  constructor(token, options = {}) {
    super(options);
    this.token = token;
    this.ticketId = null;
    this._moved = false;
  }

  /** Ask the server to take the ticket out of the line; the answer is a "status" event. */
  leave() {
    if (this._ws?.readyState !== 1) return false;
    this._ws.send(JSON.stringify({ type: "leave" }));
    return true;
  }

  _request() {
    return { type: "watch", token: this.token };
  }

  _note(message) {
    if (typeof message.ticket_id === "string") this.ticketId = message.ticket_id;
    if (message.type === "status" && FINAL_STATUSES.includes(message.status)) {
      this._finished = message.status;
    } else if (message.type === "status") {
      this._finished = null; // no_show: keep watching, a requeue may follow
    } else if (message.type === "moved" && typeof message.token === "string") {
      // The server closes next; the new ticket is watched with its own token at once.
      this._finished = null;
      this._moved = true;
      this.token = message.token;
      this.ticketId = message.to_ticket_id;
    } else {
      this._finished = null;
    }
  }

  _closedFinally() {
    if (this._moved) {
      this._moved = false;
      this.seq = null; // another ticket, maybe another queue: its seq starts afresh
      this.attempt = 0;
      this._connect();
      return true;
    }
    if (this._finished === null) return false;
    this._end({ reason: "finished", status: this._finished });
    return true;
  }
}

/** A live staff or board view of a queue: "line" or "board" events (and "queue"), until closed
 * or refused ("end" with reason "unauthorized", "forbidden" or "queue_not_found"). */
export class ViewWatch extends LiveSocket {
  constructor(request, options = {}) {
    super(options);
    this.request = request;
  }

  _request() {
    return this.request;
  }
}

/** Keep a ticket in the browser so a reload resumes it (localStorage, keyed by queue). */
export function rememberTicket(queue, ticket, storage = globalThis.localStorage) {
  const { ticket_id, token, number } = ticket;
  try {
    storage.setItem(STORAGE_PREFIX + queue, JSON.stringify({ ticket_id, token, number }));
  } catch {
    // Storage full or disabled (private browsing): the ticket still works until a reload.
  }
}

/** The ticket remembered for `queue`, or null. */
export function recallTicket(queue, storage = globalThis.localStorage) {
  try {
    const saved = JSON.parse(storage.getItem(STORAGE_PREFIX + queue) ?? "null");
    const valid = typeof saved?.token === "string" && typeof saved?.ticket_id === "string";
    return valid ? saved : null;
  } catch {
    return null;
  }
}

export function forgetTicket(queue, storage = globalThis.localStorage) {
  try {
    storage.removeItem(STORAGE_PREFIX + queue);
  } catch {
    // Nothing to forget when storage is unavailable.
  }
}

function enc(part) {
  return encodeURIComponent(part);
}
