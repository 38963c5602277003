import { Hono } from "hono";
import { z } from "zod";
import { CairnError } from "../../errors.ts";
import { channelEvents } from "../../notify/config.ts";
import { DELIVERY_STATUSES, deliveryRecord } from "../../notify/delivery.ts";
import type { AppEnv } from "../deps.ts";
import { ok } from "../envelope.ts";
import { jsonBody, queryOf } from "../validate.ts";

export const NotificationsQuery = z.strictObject({
  status: z.enum(DELIVERY_STATUSES).optional(),
  channel: z.string().min(1).max(63).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(50),
});

export const NotificationTestBody = z.strictObject({
  channel: z.string().min(1, "name a configured channel (notifications[].name)").max(63),
});

/** GET /admin/notifications and POST /admin/notifications/test. */
export function notificationRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/", async (c) => {
    const q = queryOf(c, NotificationsQuery);
    const { store, config } = c.get("deps").services;
    const counts = await store.deliveryCounts();
    const zero = { pending: 0, delivered: 0, dead: 0, failing: 0 };
    return ok(c, {
      // Targets (URLs, tokens) are not shown: names, kinds and events only.
      channels: config.notifications.map((ch) => ({
        name: ch.name,
        kind: ch.kind,
        events: channelEvents(ch).filter((e) => e !== "test"),
        deliveries: counts[ch.name] ?? zero,
      })),
      deliveries: (await store.listDeliveries({ status: q.status, channel: q.channel }, q.limit))
        .map(deliveryRecord),
    });
  });

  app.post("/test", async (c) => {
    const { notifier, services } = c.get("deps");
    const body = await jsonBody(c, NotificationTestBody);
    const names = services.config.notifications.map((ch) => ch.name);
    if (!names.includes(body.channel)) {
      throw new CairnError(
        "VALIDATION_FAILED",
        `Unknown notification channel ${JSON.stringify(body.channel)}: ` +
          (names.length ? `configured channels are ${names.join(", ")}` : "none is configured"),
        { details: [{ path: "channel", message: "not a configured channel" }] },
      );
    }
    if (!notifier) {
      throw new CairnError("INTERNAL", "Notifications are sent by the daemon; none runs here");
    }
    const delivery = await notifier.test(body.channel);
    const delivered = delivery.status === "delivered";
    return ok(c, { delivered, delivery: deliveryRecord(delivery) }, {
      message: delivered
        ? `Test notification delivered to ${body.channel}`
        : `Test notification to ${body.channel} failed (${
          delivery.last_error ?? "not sent yet"
        }); it will be retried`,
    });
  });

  return app;
}
