import { createHmac } from "node:crypto";
import { VERSION } from "../version.ts";
import type { ChannelConfig } from "./config.ts";
import type { EventPayload } from "./events.ts";

/** An HTTP request to make, fully rendered (pure: no I/O). */
export interface HttpRequest {
  url: string;
  method: "POST";
  headers: Record<string, string>;
  body: string;
}

/** The signature header value: `sha256=` + hex HMAC-SHA256 of the exact body bytes. */
export function signature(secret: string, body: string): string {
  return "sha256=" + createHmac("sha256", secret).update(body, "utf8").digest("hex");
}

const FAILURE = new Set(["job_failed", "verify_failed", "backup_overdue"]);

/**
 * The request one delivery makes on an HTTP channel, or null when the channel has
 * nothing to send for this event (a healthchecks channel without a URL for the client).
 *
 * - webhook: the payload plus `delivery_id` as JSON. Headers X-Cairn-Event,
 *   X-Cairn-Delivery (the same on every retry: receivers dedupe on it) and, with a
 *   secret, X-Cairn-Signature in GitHub's X-Hub-Signature-256 form.
 * - ntfy: the summary as the body; Title, Priority (4 = high for failures) and Tags
 *   headers (docs.ntfy.sh/publish); a token as Authorization: Bearer.
 * - slack: `{"text": ...}`, the incoming-webhook body Slack, Mattermost and Discord's
 *   /slack endpoint accept.
 * - healthchecks: POST <url>/start, <url> (success) or <url>/fail, the summary as the
 *   body (healthchecks.io "Pinging API"; Uptime Kuma push URLs take the same). A test
 *   event goes to <url>/log, which records without changing the check's state.
 */
export function renderHttp(
  channel: Exclude<ChannelConfig, { kind: "email" }>,
  deliveryId: number,
  payload: EventPayload,
): HttpRequest | null {
  const base = { "user-agent": `cairn/${VERSION}` };
  switch (channel.kind) {
    case "webhook": {
      const body = JSON.stringify({ ...payload, delivery_id: deliveryId });
      const headers: Record<string, string> = {
        ...base,
        "content-type": "application/json",
        "x-cairn-event": payload.event,
        "x-cairn-delivery": String(deliveryId),
      };
      if (channel.secret) headers["x-cairn-signature"] = signature(channel.secret, body);
      return { url: channel.url, method: "POST", headers, body };
    }
    case "ntfy": {
      const headers: Record<string, string> = {
        ...base,
        "content-type": "text/plain; charset=utf-8",
        title: title(payload),
        priority: FAILURE.has(payload.event) ? "4" : "3",
        tags: FAILURE.has(payload.event) ? "warning" : "white_check_mark",
      };
      if (channel.token) headers.authorization = `Bearer ${channel.token}`;
      return { url: channel.url, method: "POST", headers, body: payload.summary };
    }
    case "slack":
      return {
        url: channel.url,
        method: "POST",
        headers: { ...base, "content-type": "application/json" },
        body: JSON.stringify({ text: `*${title(payload)}*\n${payload.summary}` }),
      };
    case "healthchecks": {
      const client = payload.client;
      const pingUrl = client !== null && Object.hasOwn(channel.urls, client)
        ? channel.urls[client]
        : payload.event === "test"
        ? Object.values(channel.urls)[0]
        : undefined;
      if (!pingUrl) return null;
      const suffix = payload.event === "job_started"
        ? "/start"
        : payload.event === "job_succeeded"
        ? ""
        : payload.event === "job_failed"
        ? "/fail"
        : payload.event === "test"
        ? "/log"
        : null;
      if (suffix === null) return null;
      return {
        url: pingUrl.replace(/\/+$/, "") + suffix,
        method: "POST",
        headers: { ...base, "content-type": "text/plain; charset=utf-8" },
        body: payload.summary,
      };
    }
  }
}

/** A short title: "cairn: job failed (pg-main)". */
export function title(payload: EventPayload): string {
  const what = payload.event.replace(/_/g, " ");
  return `cairn: ${what}${payload.client ? ` (${payload.client})` : ""}`;
}

/** The email for one delivery: subject is the title, the body the summary and the JSON. */
export function renderEmail(payload: EventPayload): { subject: string; text: string } {
  return {
    subject: title(payload),
    text: `${payload.summary}\n\n${JSON.stringify(payload, null, 2)}\n`,
  };
}
