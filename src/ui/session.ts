import { encodeBase64Url } from "./b64.ts";

/** A signed-in browser: its CSRF token and when it stops being valid (epoch ms). */
export interface Session {
  id: string;
  csrf: string;
  createdAt: number;
  /** Absolute end: a session never outlives this, however busy. */
  expiresAt: number;
  /** Sliding end: moved forward by each request, so an idle tab signs out. */
  idleUntil: number;
}

/** Lifetimes in ms: 8 h absolute, 1 h idle. */
export const SESSION_TTL_MS = 8 * 3_600_000;
export const SESSION_IDLE_MS = 3_600_000;

function token(): string {
  return encodeBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

/**
 * Sessions held in the daemon's memory: a restart signs every browser out, and a
 * cookie from before a sign-out (or a restart) names nothing and is refused.
 */
export class SessionStore {
  #sessions = new Map<string, Session>();
  constructor(
    private readonly now: () => number = Date.now,
    private readonly ttlMs = SESSION_TTL_MS,
    private readonly idleMs = SESSION_IDLE_MS,
  ) {}

  create(): Session {
    this.#sweep();
    const at = this.now();
    const session = {
      id: token(),
      csrf: token(),
      createdAt: at,
      expiresAt: at + this.ttlMs,
      idleUntil: at + this.idleMs,
    };
    this.#sessions.set(session.id, session);
    return session;
  }

  /** The live session with this id, its idle deadline moved on; null when unknown or expired. */
  get(id: string | undefined): Session | null {
    if (!id) return null;
    const session = this.#sessions.get(id);
    if (!session) return null;
    const at = this.now();
    if (at >= session.expiresAt || at >= session.idleUntil) {
      this.#sessions.delete(id);
      return null;
    }
    session.idleUntil = Math.min(session.expiresAt, at + this.idleMs);
    return session;
  }

  delete(id: string | undefined): void {
    if (id) this.#sessions.delete(id);
  }

  get size(): number {
    return this.#sessions.size;
  }

  #sweep(): void {
    const at = this.now();
    for (const [id, s] of this.#sessions) {
      if (at >= s.expiresAt || at >= s.idleUntil) this.#sessions.delete(id);
    }
  }
}
