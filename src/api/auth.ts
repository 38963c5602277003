import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { CairnError } from "../errors.ts";

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

/** Constant-time: comparing digests hides both the content and the length of the key. */
export function keyMatches(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * Every route but GET /admin/health needs the admin key, as a Bearer token or in
 * x-athena-admin-key. With no key configured (allowed only on loopback) the API is open.
 * GET /metrics also takes `metricsToken` (server.metrics_token), which opens nothing else;
 * with a metrics token and no admin key, /metrics needs the token.
 */
export function requireAdminKey(
  adminKey: string | undefined,
  metricsToken?: string,
): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method === "GET" && c.req.path === "/admin/health") return await next();
    if (c.req.method === "GET" && c.req.path === "/metrics" && metricsToken) {
      const bearer = c.req.header("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1]?.trim();
      const given = bearer ?? c.req.header("x-athena-admin-key")?.trim();
      if (
        given &&
        (keyMatches(given, metricsToken) || (adminKey !== undefined && keyMatches(given, adminKey)))
      ) return await next();
      throw new CairnError(
        "UNAUTHORIZED",
        given
          ? "Invalid metrics token"
          : "Missing metrics token: send Authorization: Bearer <server.metrics_token or admin key>",
      );
    }
    if (adminKey) {
      const auth = c.req.header("authorization");
      const bearer = auth?.match(/^Bearer\s+(.+)$/i)?.[1];
      const given = bearer ?? c.req.header("x-athena-admin-key");
      if (!given || !keyMatches(given.trim(), adminKey)) {
        throw new CairnError(
          "UNAUTHORIZED",
          given
            ? "Invalid admin key"
            : "Missing admin key: send Authorization: Bearer <key> or x-athena-admin-key",
        );
      }
    }
    await next();
  };
}
