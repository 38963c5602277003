/**
 * What the notifications page shows. The channels, deliveries and test endpoint come
 * with the operability work (GET /admin/notifications, POST /admin/notifications/test);
 * until that is merged the source says "not configured". Wiring it is one implementation
 * of this interface, passed to uiRoutes.
 */
export interface NotificationChannelView {
  name: string;
  kind: string;
  events: string[];
  /** The target as the API shows it (secrets already redacted there). */
  target: string;
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

/** The source until notifications exist in this build. */
export const notConfigured: NotificationsSource = {
  view: () =>
    Promise.resolve({
      configured: false,
      reason: "This build of cairn has no notification channels yet.",
    }),
};
