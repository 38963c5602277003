import nodemailer from "nodemailer";
import { redact } from "../redact.ts";
import type { ChannelConfig } from "./config.ts";
import type { EventPayload } from "./events.ts";
import { renderEmail } from "./render.ts";

/**
 * Sends one event by SMTP with nodemailer (works under Deno 2.9.6: plain SMTP,
 * STARTTLS and implicit TLS through node:net and node:tls). Loaded on first use, so
 * configs without an email channel never load nodemailer. Throws "SMTP: ..." with the
 * server's reason; the password never appears in it (redact()).
 */
export async function sendEmail(
  channel: Extract<ChannelConfig, { kind: "email" }>,
  payload: EventPayload,
): Promise<void> {
  const transport = nodemailer.createTransport({
    host: channel.host,
    port: channel.port,
    secure: channel.secure,
    auth: channel.user ? { user: channel.user, pass: channel.password ?? "" } : undefined,
    connectionTimeout: channel.timeout_ms,
    greetingTimeout: channel.timeout_ms,
    socketTimeout: channel.timeout_ms,
  });
  const { subject, text } = renderEmail(payload);
  try {
    await transport.sendMail({ from: channel.from, to: channel.to, subject, text });
  } catch (error) {
    throw new Error(`SMTP: ${redact((error as Error).message)}`);
  } finally {
    transport.close();
  }
}
