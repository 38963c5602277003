import type { ApiCall } from "./api_call.ts";

/**
 * What the notifications page shows, read through GET /admin/notifications and sent
 * through POST /admin/notifications/test (apiNotifications). The interface keeps the page
 * apart from the API's record shapes.
 */
export interface NotificationChannelView {
  name: string;
  kind: string;
  events: string[];
  /** Deliveries by state (pending, delivered, dead, failing). The API shows no targets. */
  deliveries: Record<string, number>;
}

export interface NotificationDeliveryView {
  id: string | number;
  channel: string;
  event: string;
  state: string;
  attempts: number;
  at: string | null;
  error: string | null;
}

export type NotificationsView =
  | { configured: false; reason: string }
  | {
    configured: true;
    channels: NotificationChannelView[];
    deliveries: NotificationDeliveryView[];
  };

export interface NotificationsSource {
  view(): Promise<NotificationsView>;
  /** Sends a test event to one channel; absent while nothing can send. */
  sendTest?(channel: string): Promise<{ ok: boolean; message: string }>;
}

/** For tests and builds without notifications. */
export const notConfigured: NotificationsSource = {
  view: () =>
    Promise.resolve({
      configured: false,
      reason: "This build of cairn has no notification channels.",
    }),
};

/** The daemon's notifications, through its own admin API (so secrets stay as the API shows them). */
export function apiNotifications(api: ApiCall): NotificationsSource {
  return {
    async view() {
      const res = await api("GET", "/admin/notifications?limit=50");
      const body = await res.json() as { data?: any; message?: string };
      if (!res.ok) return { configured: false, reason: body.message ?? `HTTP ${res.status}` };
      const channels: any[] = body.data.channels ?? [];
      if (channels.length === 0) {
        return {
          configured: false,
          reason: "No channel is configured: add a notifications: list to the config file.",
        };
      }
      return {
        configured: true,
        channels: channels.map((ch) => ({
          name: String(ch.name),
          kind: String(ch.kind),
          events: (ch.events ?? []).map(String),
          deliveries: ch.deliveries ?? {},
        })),
        deliveries: (body.data.deliveries ?? []).map((d: any) => ({
          id: d.id,
          channel: String(d.channel),
          event: String(d.event),
          state: String(d.status),
          attempts: Number(d.attempts),
          at: d.delivered_at ?? d.updated_at ?? null,
          error: d.last_error ?? null,
        })),
      };
    },
    async sendTest(channel: string) {
      const res = await api("POST", "/admin/notifications/test", { json: { channel } });
      const body = await res.json() as { message?: string; data?: { delivered?: boolean } };
      return { ok: res.ok && body.data?.delivered === true, message: body.message ?? "" };
    },
  };
}
