import { MASK, redactUrl } from "../redact.ts";
import type { ClientConfig, Config } from "./schema.ts";
import { redactChannel } from "../notify/config.ts";

/** A client as it may be shown anywhere: passwords and keys replaced by ***. */
export function redactClient(client: ClientConfig): Record<string, unknown> {
  switch (client.kind) {
    case "postgres":
      return {
        ...client,
        url: redactUrl(client.url),
        ...(client.password ? { password: MASK } : {}),
        ...(client.verify_url ? { verify_url: redactUrl(client.verify_url) } : {}),
        ...(client.verify_password ? { verify_password: MASK } : {}),
      };
    case "redis":
      return {
        ...client,
        url: redactUrl(client.url),
        ...(client.password ? { password: MASK } : {}),
      };
    case "s3":
      return { ...client, access_key_id: MASK, secret_access_key: MASK };
    default:
      return { ...client };
  }
}

export function redactConfig(config: Config): Record<string, unknown> {
  return {
    ...config,
    server: {
      ...config.server,
      admin_key: config.server.admin_key ? MASK : undefined,
      metrics_token: config.server.metrics_token ? MASK : undefined,
    },
    store: config.store.url ? { ...config.store, url: redactUrl(config.store.url) } : config.store,
    repository: config.repository.kind === "s3"
      ? { ...config.repository, access_key_id: MASK, secret_access_key: MASK }
      : config.repository,
    clients: Object.fromEntries(
      Object.entries(config.clients).map(([n, c]) => [n, redactClient(c)]),
    ),
    notifications: config.notifications.map(redactChannel),
  };
}
