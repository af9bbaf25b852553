/**
 * The console's sessions. A browser cannot send the ops API's bearer header
 * by itself, so an operator signs in with the ops token once and gets a
 * session cookie: an opaque random id (256 bits), kept server-side in the
 * scheduler's Redis under its SHA-256 (a read of Redis does not yield a usable
 * cookie), with the session's CSRF token and a tag of the ops token it was
 * opened with (changing the token ends every session). Server-side rather than
 * a signed cookie, so signing out really ends the session everywhere, and
 * every `prewarm serve` process on the same Redis knows it.
 *
 *   {prefix}:console:session:{sha256(id)}   JSON {csrf, tokenTag, createdAt}, expires with the session
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { SchedulerRedis } from "../../redis/redis";

export const SESSION_COOKIE = "prewarm_console";
/** A session lasts this long from sign-in (the cookie's Max-Age and the Redis key's TTL). */
export const SESSION_TTL_S = 8 * 3600;

export interface Session {
  csrf: string;
  tokenTag: string;
  createdAt: number;
}

const ID_RE = /^[A-Za-z0-9_-]{43}$/;

/** Equal strings, compared in constant time (different lengths: false). */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class Sessions {
  constructor(
    private readonly redis: SchedulerRedis,
    private readonly prefix: string,
    private readonly opsToken: string,
  ) {}

  private key(id: string): string {
    return `${this.prefix}:console:session:${createHash("sha256").update(id).digest("hex")}`;
  }

  /** A tag of the ops token (never the token): sessions opened with another token are not accepted. */
  private get tokenTag(): string {
    return createHmac("sha256", this.opsToken).update("prewarm console session").digest("base64url");
  }

  /** Opens a session; returns its id (the cookie's value) and its CSRF token. */
  async open(now = Date.now()): Promise<{ id: string; session: Session }> {
    const id = randomBytes(32).toString("base64url");
    const session: Session = { csrf: randomBytes(32).toString("base64url"), tokenTag: this.tokenTag, createdAt: now };
    await this.redis.set(this.key(id), JSON.stringify(session), "EX", SESSION_TTL_S);
    return { id, session };
  }

  /** The session of a cookie value, or null (malformed, unknown, expired, or opened with another ops token). */
  async get(id: string | undefined): Promise<Session | null> {
    if (id === undefined || !ID_RE.test(id)) return null;
    const raw = await this.redis.get(this.key(id));
    if (raw === null) return null;
    const s = JSON.parse(raw) as Session;
    return sameSecret(s.tokenTag, this.tokenTag) ? s : null;
  }

  async close(id: string | undefined): Promise<void> {
    if (id !== undefined && ID_RE.test(id)) await this.redis.del(this.key(id));
  }
}
