import { z } from "zod";
import { VERSION } from "../version.ts";
import {
  BulkRequeueBody,
  CleanupBody,
  CreateBackupBody,
  CreateScheduleBody,
  DlqQuery,
  ListBackupsQuery,
  ListJobsQuery,
  PatchScheduleBody,
  PruneBody,
  RestoreBody,
  VerifyBody,
} from "./schemas.ts";
import { NotificationsQuery, NotificationTestBody } from "./routes/notifications.ts";
import { RepositoryCheckBody } from "./routes/repository.ts";

/** One API operation: what the route table in routes/*.ts serves, described for OpenAPI. */
interface Operation {
  method: "get" | "post" | "patch" | "delete";
  /** OpenAPI path template: `{key}` is a URL-encoded backup key, `{id}` a positive integer. */
  path: string;
  summary: string;
  tag: string;
  body?: z.ZodType;
  query?: z.ZodObject;
  status: number;
  /** The success body is bytes, not the JSON envelope. */
  binary?: boolean;
  /** The success body is the Prometheus text exposition format. */
  prometheus?: boolean;
}

const OPERATIONS: Operation[] = [
  {
    method: "get",
    path: "/admin/health",
    summary: "Liveness (no auth)",
    tag: "system",
    status: 200,
  },
  {
    method: "get",
    path: "/admin/clients",
    summary: "Configured clients, secrets redacted",
    tag: "system",
    status: 200,
  },
  {
    method: "get",
    path: "/admin/status",
    summary:
      "Per-client health (ok/overdue/failing/never), last success, verification, next run; jobs, workers, notifications",
    tag: "system",
    status: 200,
  },
  {
    method: "get",
    path: "/metrics",
    summary: "Prometheus metrics (admin key or server.metrics_token)",
    tag: "system",
    status: 200,
    prometheus: true,
  },
  {
    method: "post",
    path: "/admin/repository/check",
    summary:
      "Queue a repository check (read_data: hash every byte); the job's result lists problems, " +
      "and a check that finds any ends failed (CHECK_FOUND_PROBLEMS)",
    tag: "repository",
    body: RepositoryCheckBody,
    status: 202,
  },
  {
    method: "get",
    path: "/admin/notifications",
    summary: "Notification channels and recent deliveries with their state",
    tag: "notifications",
    query: NotificationsQuery,
    status: 200,
  },
  {
    method: "post",
    path: "/admin/notifications/test",
    summary: "Send a test event to one channel now",
    tag: "notifications",
    body: NotificationTestBody,
    status: 200,
  },
  {
    method: "get",
    path: "/admin/openapi.json",
    summary: "This document",
    tag: "system",
    status: 200,
  },
  {
    method: "post",
    path: "/admin/backups",
    summary: "Queue a backup",
    tag: "backups",
    body: CreateBackupBody,
    status: 202,
  },
  {
    method: "get",
    path: "/admin/backups",
    summary: "List backups, newest first",
    tag: "backups",
    query: ListBackupsQuery,
    status: 200,
  },
  {
    method: "post",
    path: "/admin/backups/{key}/restore",
    summary: "Queue a restore",
    tag: "backups",
    body: RestoreBody,
    status: 202,
  },
  {
    method: "post",
    path: "/admin/backups/{key}/verify",
    summary: "Queue a verification",
    tag: "backups",
    body: VerifyBody,
    status: 202,
  },
  {
    method: "get",
    path: "/admin/backups/{key}/download",
    summary: "Stream the artifact (Range supported)",
    tag: "backups",
    status: 200,
    binary: true,
  },
  {
    method: "delete",
    path: "/admin/backups/{key}",
    summary: "Delete the artifact and its manifest",
    tag: "backups",
    status: 200,
  },
  {
    method: "post",
    path: "/admin/backups/prune",
    summary: "Queue a prune, or return the plan when dry_run",
    tag: "backups",
    body: PruneBody,
    status: 202,
  },
  {
    method: "get",
    path: "/admin/backups/jobs",
    summary: "List jobs",
    tag: "jobs",
    query: ListJobsQuery,
    status: 200,
  },
  { method: "get", path: "/admin/backups/jobs/{id}", summary: "One job", tag: "jobs", status: 200 },
  {
    method: "post",
    path: "/admin/backups/jobs/{id}/cancel",
    summary: "Cancel a job",
    tag: "jobs",
    status: 200,
  },
  {
    method: "get",
    path: "/admin/backups/schedules",
    summary: "List schedules",
    tag: "schedules",
    status: 200,
  },
  {
    method: "post",
    path: "/admin/backups/schedules",
    summary: "Create a schedule",
    tag: "schedules",
    body: CreateScheduleBody,
    status: 201,
  },
  {
    method: "patch",
    path: "/admin/backups/schedules/{id}",
    summary: "Change a schedule",
    tag: "schedules",
    body: PatchScheduleBody,
    status: 200,
  },
  {
    method: "delete",
    path: "/admin/backups/schedules/{id}",
    summary: "Delete a schedule (its jobs' history is kept)",
    tag: "schedules",
    status: 200,
  },
  {
    method: "get",
    path: "/admin/backups/dlq",
    summary: "Failed jobs (the dead-letter queue)",
    tag: "dlq",
    query: DlqQuery,
    status: 200,
  },
  {
    method: "get",
    path: "/admin/backups/dlq/stats",
    summary: "Dead-letter counts by kind and client",
    tag: "dlq",
    status: 200,
  },
  {
    method: "post",
    path: "/admin/backups/dlq/requeue",
    summary: "Requeue failed jobs in bulk",
    tag: "dlq",
    body: BulkRequeueBody,
    status: 200,
  },
  {
    method: "post",
    path: "/admin/backups/dlq/cleanup",
    summary: "Forget failed jobs older than N days",
    tag: "dlq",
    body: CleanupBody,
    status: 200,
  },
  {
    method: "post",
    path: "/admin/backups/dlq/{id}/requeue",
    summary: "Requeue one failed job",
    tag: "dlq",
    status: 200,
  },
  {
    method: "delete",
    path: "/admin/backups/dlq/{id}",
    summary: "Forget one failed job",
    tag: "dlq",
    status: 200,
  },
];

function schema(type: z.ZodType): unknown {
  // The request as a client writes it (io "input"); refinements such as the cron
  // check have no JSON Schema form and are described by the 400 they produce.
  const { $schema: _, ...rest } = z.toJSONSchema(type, { io: "input", unrepresentable: "any" });
  return rest;
}

const PARAMETERS: Record<string, unknown> = {
  key: {
    name: "key",
    in: "path",
    required: true,
    description:
      "The backup key, URL-encoded once (backups%2Fapp_db%2F20261121T020000000Z-daily.dump)",
    schema: { type: "string" },
  },
  id: {
    name: "id",
    in: "path",
    required: true,
    schema: { type: "integer", minimum: 1 },
  },
};

const ENVELOPE = {
  type: "object",
  required: ["status", "message"],
  properties: {
    status: { enum: ["success"] },
    message: { type: "string" },
    data: {},
  },
};

const ERROR = {
  type: "object",
  required: ["status", "message", "code"],
  properties: {
    status: { enum: ["error"] },
    message: { type: "string" },
    code: { type: "string", description: "A stable code: VALIDATION_FAILED, UNKNOWN_CLIENT, ..." },
    details: {},
  },
};

/**
 * The admin API as an OpenAPI 3.1 document, generated from the same zod schemas that
 * validate requests, so a body field cannot be documented and refused (or the
 * reverse). Served at GET /admin/openapi.json; a test checks that every route the
 * app serves is in it.
 */
export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    const names = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    const query = op.query
      ? Object.entries(op.query.shape).map(([name, type]) => ({
        name,
        in: "query",
        required: false,
        schema: schema(type as z.ZodType),
      }))
      : [];
    paths[op.path] ??= {};
    paths[op.path][op.method] = {
      summary: op.summary,
      tags: [op.tag],
      ...(op.path === "/admin/health" ? { security: [] } : {}),
      parameters: [...names.map((n) => PARAMETERS[n]), ...query],
      ...(op.body
        ? {
          requestBody: {
            required: false,
            content: { "application/json": { schema: schema(op.body) } },
          },
        }
        : {}),
      responses: {
        [op.status]: op.binary
          ? { description: "The artifact's bytes", content: { "application/octet-stream": {} } }
          : op.prometheus
          ? {
            description: "Prometheus text exposition format 0.0.4",
            content: { "text/plain; version=0.0.4": {} },
          }
          : { description: "Success", content: { "application/json": { schema: ENVELOPE } } },
        default: { description: "Error", content: { "application/json": { schema: ERROR } } },
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: { title: "cairn admin API", version: VERSION },
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: "The admin key" },
        athena: { type: "apiKey", in: "header", name: "x-athena-admin-key" },
      },
    },
    security: [{ bearer: [] }, { athena: [] }],
    paths,
  };
}
