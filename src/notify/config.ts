import { z } from "zod";

/**
 * Events a channel can subscribe to. `job_started` exists for healthchecks' start ping;
 * `test` is what POST /admin/notifications/test sends (every channel takes it).
 */
export const NOTIFY_EVENTS = [
  "job_failed",
  "job_succeeded",
  "job_started",
  "verify_failed",
  "backup_overdue",
  "client_recovered",
  "test",
] as const;
export type NotifyEvent = typeof NOTIFY_EVENTS[number];

/** What a channel hears when its config names no events: failures and recoveries, not successes. */
export const DEFAULT_EVENTS: NotifyEvent[] = [
  "job_failed",
  "verify_failed",
  "backup_overdue",
  "client_recovered",
];

const httpUrl = z.string().min(1).refine((v) => {
  try {
    return ["http:", "https:"].includes(new URL(v).protocol);
  } catch {
    return false;
  }
}, "must be a URL starting with http:// or https://");

const common = {
  /** The channel's name: unique, used in the outbox, the API and metrics. */
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "names are 1-63 of a-z, 0-9, _ and -"),
  events: z.array(z.enum(NOTIFY_EVENTS)).optional(),
  /** Only events about these clients (default: every client). */
  clients: z.array(z.string().min(1)).optional(),
  /** Send attempts before a delivery is given up (then it shows as dead). */
  max_attempts: z.number().int().min(1).max(100).default(10),
  /** First retry delay; doubled each attempt up to an hour, with jitter. */
  retry_backoff_ms: z.number().int().nonnegative().default(30_000),
  /** One send attempt's time limit. */
  timeout_ms: z.number().int().min(100).max(300_000).default(10_000),
};

const Webhook = z.strictObject({
  ...common,
  kind: z.literal("webhook"),
  url: httpUrl,
  /** When set, X-Cairn-Signature: sha256=<hex HMAC-SHA256 of the body under this secret>. */
  secret: z.string().min(1).optional(),
});
const Ntfy = z.strictObject({
  ...common,
  kind: z.literal("ntfy"),
  /** The topic URL, for example https://ntfy.sh/my-backups. */
  url: httpUrl,
  /** An ntfy access token (sent as Authorization: Bearer). */
  token: z.string().min(1).optional(),
});
const Healthchecks = z.strictObject({
  ...common,
  kind: z.literal("healthchecks"),
  /** Each client's ping URL; a client without one is not pinged. */
  urls: z.record(z.string().min(1), httpUrl),
});
const Slack = z.strictObject({
  ...common,
  kind: z.literal("slack"),
  /** An incoming-webhook URL (Slack, Mattermost, or Discord's /slack endpoint). */
  url: httpUrl,
});
const Email = z.strictObject({
  ...common,
  kind: z.literal("email"),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(587),
  /** TLS from the first byte (port 465); otherwise STARTTLS when the server offers it. */
  secure: z.boolean().default(false),
  user: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
  from: z.string().min(3),
  to: z.array(z.string().min(3)).min(1),
});

export const ChannelSchema = z.discriminatedUnion("kind", [
  Webhook,
  Ntfy,
  Healthchecks,
  Slack,
  Email,
]);
export type ChannelConfig = z.infer<typeof ChannelSchema>;

/** The `notifications:` list: channel names are unique. */
export const NotificationsSchema = z.array(ChannelSchema).default([]).superRefine(
  (channels, ctx) => {
    const seen = new Set<string>();
    channels.forEach((c, i) => {
      if (seen.has(c.name)) {
        ctx.addIssue({
          code: "custom",
          path: [i, "name"],
          message: `duplicate channel name ${JSON.stringify(c.name)}: names must be unique`,
        });
      }
      seen.add(c.name);
    });
  },
);

/** The events a channel hears: healthchecks always hears start, success and failure. */
export function channelEvents(c: ChannelConfig): NotifyEvent[] {
  if (c.kind === "healthchecks") return ["job_started", "job_succeeded", "job_failed", "test"];
  return [...(c.events ?? DEFAULT_EVENTS), "test"];
}

/** Every secret a channel holds (registered with redact() so no log or payload shows one). */
export function channelSecrets(c: ChannelConfig): string[] {
  switch (c.kind) {
    case "webhook":
      return c.secret ? [c.secret] : [];
    case "ntfy":
      return c.token ? [c.token] : [];
    case "healthchecks":
      // A ping URL is a credential: anyone holding it can ping.
      return Object.values(c.urls);
    case "slack":
      return [c.url];
    case "email":
      return c.password ? [c.password] : [];
  }
}

/** A channel as it may be shown: secrets and credential-bearing URLs replaced by ***. */
export function redactChannel(c: ChannelConfig): Record<string, unknown> {
  switch (c.kind) {
    case "webhook":
      return { ...c, ...(c.secret ? { secret: "***" } : {}) };
    case "ntfy":
      return { ...c, ...(c.token ? { token: "***" } : {}) };
    case "healthchecks":
      return { ...c, urls: Object.fromEntries(Object.keys(c.urls).map((k) => [k, "***"])) };
    case "slack":
      return { ...c, url: "***" };
    case "email":
      return { ...c, ...(c.password ? { password: "***" } : {}) };
  }
}
