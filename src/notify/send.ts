import { unseen } from "../lazy.ts";
import { redact } from "../redact.ts";
import type { ChannelConfig } from "./config.ts";
import type { EventPayload } from "./events.ts";
import { renderHttp } from "./render.ts";

/**
 * Sends one delivery on its channel. Resolves when the target accepted it (HTTP 2xx,
 * or the SMTP server's 250); throws an Error whose message names what went wrong and
 * never the target URL (a webhook URL is often a credential).
 */
export async function sendDelivery(
  channel: ChannelConfig,
  deliveryId: number,
  payload: EventPayload,
): Promise<void> {
  if (channel.kind === "email") return await sendEmail(channel, payload);
  const request = renderHttp(channel, deliveryId, payload);
  if (!request) return; // nothing to send for this event on this channel
  let response: Response;
  try {
    response = await fetch(request.url, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: AbortSignal.timeout(channel.timeout_ms),
      redirect: "manual",
    });
  } catch (error) {
    const e = error as Error;
    throw new Error(
      e.name === "TimeoutError"
        ? `no answer within ${channel.timeout_ms} ms`
        : `request failed: ${redact(e.message).replace(request.url, "<url>")}`,
    );
  }
  // The body is not needed; drain it so the connection is reused.
  const text = await response.text().catch(() => "");
  if (response.status < 200 || response.status > 299) {
    throw new Error(`HTTP ${response.status} ${redact(text.slice(0, 200)).trim()}`.trim());
  }
}

async function sendEmail(
  channel: Extract<ChannelConfig, { kind: "email" }>,
  payload: EventPayload,
): Promise<void> {
  const email = await import(unseen("./email.ts")) as typeof import("./email.ts");
  await email.sendEmail(channel, payload);
}
