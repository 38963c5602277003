/** @jsxImportSource hono/jsx */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { compress } from "hono/compress";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { JSX } from "hono/jsx/jsx-runtime";
import { keyMatches } from "../api/auth.ts";
import type { AppEnv } from "../api/deps.ts";
import { scrub } from "../api/envelope.ts";
import { redactClient } from "../config/redacted.ts";
import { CairnError } from "../errors.ts";
import {
  JOB_KINDS,
  JOB_STATUSES,
  type JobKind,
  type JobRecord,
  jobRecord,
  type JobStatus,
} from "../jobs/types.ts";
import { redact } from "../redact.ts";
import {
  listBackups,
  type Manifest,
  manifestSummary,
  readManifest,
} from "../repository/manifest.ts";
import { artifactTransforms } from "../pipeline/read.ts";
import { requireClient } from "../runtime/services.ts";
import { APP_CSS, HTMX_JS } from "./assets.ts";
import { cronPreview } from "./cron_preview.ts";
import { csrfProblem } from "./csrf.ts";
import { overviewRows } from "./data.ts";
import { decryptability } from "./encryption.ts";
import { HostIdentityCache } from "./host_identities.ts";
import { isConfigOwned } from "./config_owned.ts";
import { Layout, type PageContext, SignInPage } from "./layout.tsx";
import { apiNotifications, type NotificationsSource } from "./notifications.ts";
import { BackupPage, ClientPage, RestoreConfirmPage } from "./pages/client.tsx";
import { DlqPage } from "./pages/dlq.tsx";
import { type JobFilters, JobRow, JobsPage, NewJobRows } from "./pages/jobs.tsx";
import { NotificationsPage } from "./pages/notifications.tsx";
import { OverviewPage } from "./pages/overview.tsx";
import { PreviewList, SchedulesPage } from "./pages/schedules.tsx";
import { parseTables, replacedDescription, restoreOptions } from "./restore_form.ts";
import { SignInLimiter } from "./rate_limit.ts";
import { type Session, SessionStore } from "./session.ts";

import type { ApiCall } from "./api_call.ts";
export type { ApiCall };

export interface UiOptions {
  adminKey: string | undefined;
  api: ApiCall;
  notifications?: NotificationsSource;
  now?: () => number;
}

/** Paths the dashboard owns; everything else is the API's (and its bearer auth's). */
export function isUiPath(path: string): boolean {
  return path === "/" || path === "/ui" || path.startsWith("/ui/");
}

export const SESSION_COOKIE = "cairn_session";

type UiEnv = AppEnv & { Variables: AppEnv["Variables"] & { session: Session } };
type Flash = { notice?: string; error?: string };
const flashes = new WeakMap<Session, Flash>();

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/**
 * The origin the browser sees: the request's, with the scheme a TLS-terminating proxy
 * reports in X-Forwarded-Proto. Trusting it can only make the cookie stricter (Secure) or
 * the Origin check expect https; it never lets another site in.
 */
function publicOrigin(c: Context): string {
  const url = new URL(c.req.url);
  const forwarded = c.req.header("x-forwarded-proto")?.split(",")[0].trim().toLowerCase();
  const scheme = forwarded === "https" || forwarded === "http"
    ? forwarded
    : url.protocol.slice(0, -1);
  return `${scheme}://${url.host}`;
}

function isTls(c: Context): boolean {
  return publicOrigin(c).startsWith("https:");
}

function remoteAddress(c: Context): string {
  const info = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  return info?.remoteAddr?.hostname ?? "unknown";
}

async function page(c: Context, element: JSX.Element, status = 200): Promise<Response> {
  const html = "<!DOCTYPE html>" + (await element.toString());
  return c.html(html, status as 200);
}

/** An API reply's message, with the fields it names (details), for a flash line. */
async function apiOutcome(res: Response): Promise<Flash & { data?: any }> {
  const body = await res.json().catch(() => null) as
    | { status: string; message: string; data?: any; details?: unknown }
    | null;
  if (!body) return { error: `The API answered ${res.status}` };
  if (res.ok) return { notice: body.message, data: body.data };
  const details = Array.isArray(body.details)
    ? body.details.map((d: { path?: string; message?: string }) => `${d.path}: ${d.message}`)
    : [];
  return { error: [body.message, ...details].join("; ") };
}

function formString(form: Record<string, unknown>, name: string): string | undefined {
  const v = form[name];
  return typeof v === "string" && v.trim() !== "" ? v.trim() : undefined;
}

function keyPath(key: string): string {
  return `/admin/backups/${encodeURIComponent(key)}`;
}

/**
 * The web dashboard: server-rendered pages (hono/jsx), htmx for live rows and the cron
 * preview. Sessions come from signing in with the admin key; the API's bearer auth is
 * untouched. Without an admin key (a loopback-only daemon, like the API) the dashboard is
 * open: a session is made on first visit, so the CSRF token still guards every POST.
 */
export function uiRoutes(options: UiOptions): Hono<UiEnv> {
  const app = new Hono<UiEnv>();
  const now = options.now ?? Date.now;
  const sessions = new SessionStore(now);
  const limiter = new SignInLimiter(now);
  const notifications = options.notifications ?? apiNotifications(options.api);
  const api = options.api;
  const identities = new HostIdentityCache();
  /** One stat of the identity file per request (HostIdentityCache), then pure per backup. */
  const decryptor = async (c: Context<UiEnv>) => {
    const enc = c.get("deps").services.config.repository.encryption;
    const host = await identities.get(enc?.identity_file);
    return (m: Manifest) => decryptability(artifactTransforms(m), host);
  };

  const headers: MiddlewareHandler<UiEnv> = async (c, next) => {
    await next();
    if (c.error && !c.res.headers.get("content-type")?.startsWith("text/html")) {
      const message = c.error instanceof CairnError
        ? c.error.message
        : "Internal error: see the daemon log";
      const status = c.error instanceof CairnError ? c.error.httpStatus : 500;
      c.res = undefined as unknown as Response;
      c.res = await page(
        c,
        <Layout title="Error" ctx={{ csrf: "", canSignOut: false }}>
          <p class="notice error" role="alert">{redact(message)}</p>
          <p>
            <a href="/">Back to the overview</a>
          </p>
        </Layout>,
        status,
      );
    }
    c.header("Content-Security-Policy", CSP);
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "same-origin");
    c.header("X-Frame-Options", "DENY");
    if (!c.req.path.startsWith("/ui/assets/")) c.header("Cache-Control", "no-store");
  };
  app.use("/", headers);
  app.use("/ui/*", headers);
  // Pages, htmx and CSS gzip to about a third; a download (octet-stream) is left as it is.
  app.use("/", compress());
  app.use("/ui/*", compress());

  app.get("/ui/assets/htmx.js", (c) => {
    c.header("Cache-Control", "public, max-age=86400");
    return c.body(HTMX_JS, 200, { "content-type": "text/javascript; charset=utf-8" });
  });
  app.get("/ui/assets/app.css", (c) => {
    c.header("Cache-Control", "public, max-age=86400");
    return c.body(APP_CSS, 200, { "content-type": "text/css; charset=utf-8" });
  });

  const crossSite = (c: Context, sessionToken: string | undefined, sent: string | undefined) =>
    csrfProblem({
      method: c.req.method,
      ownOrigin: publicOrigin(c),
      origin: c.req.header("origin"),
      secFetchSite: c.req.header("sec-fetch-site"),
      sentToken: sent,
      sessionToken,
    });

  const startSession = (c: Context): Session => {
    const session = sessions.create();
    setCookie(c, SESSION_COOKIE, session.id, {
      path: "/",
      httpOnly: true,
      sameSite: "Strict",
      secure: isTls(c),
      // Rounded: a millisecond between creating the session and this line is not a second.
      maxAge: Math.round((session.expiresAt - now()) / 1000),
    });
    return session;
  };

  app.get("/ui/login", (c) => {
    if (!options.adminKey) return c.redirect("/", 303);
    return page(c, <SignInPage />);
  });

  app.post("/ui/login", async (c) => {
    if (!options.adminKey) return c.redirect("/", 303);
    const problem = crossSite(c, undefined, undefined);
    if (problem) return page(c, <SignInPage error={problem} />, 403);
    const address = remoteAddress(c);
    const wait = limiter.retryAfterMs(address);
    if (wait > 0) {
      c.header("Retry-After", String(Math.ceil(wait / 1000)));
      return page(
        c,
        <SignInPage error={`Too many wrong keys: try again in ${Math.ceil(wait / 1000)} s`} />,
        429,
      );
    }
    const form = await c.req.parseBody();
    const key = typeof form.key === "string" ? form.key.trim() : "";
    if (!key || !keyMatches(key, options.adminKey)) {
      limiter.fail(address);
      return page(c, <SignInPage error="Wrong admin key" />, 401);
    }
    limiter.succeed(address);
    sessions.delete(getCookie(c, SESSION_COOKIE));
    startSession(c);
    return c.redirect("/", 303);
  });

  /** Every other dashboard path: a live session, and for POSTs the CSRF checks. */
  const auth: MiddlewareHandler<UiEnv> = async (c, next) => {
    if (c.req.path.startsWith("/ui/assets/") || c.req.path === "/ui/login") return await next();
    let session = sessions.get(getCookie(c, SESSION_COOKIE));
    if (!session) {
      if (options.adminKey) {
        if (c.req.method === "GET" || c.req.method === "HEAD") {
          if (c.req.header("hx-request")) {
            c.header("HX-Redirect", "/ui/login");
            return c.text("Signed out", 401);
          }
          return c.redirect("/ui/login", 303);
        }
        return page(c, <SignInPage error="Your session has ended: sign in again" />, 401);
      }
      if (c.req.method !== "GET" && c.req.method !== "HEAD") {
        return c.text("No session: load a dashboard page first", 403);
      }
      session = startSession(c);
    }
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      let sent = c.req.header("x-csrf-token");
      if (!sent && /form/.test(c.req.header("content-type") ?? "")) {
        const form = await c.req.parseBody();
        sent = typeof form._csrf === "string" ? form._csrf : undefined;
      }
      const problem = crossSite(c, session.csrf, sent);
      if (problem) return c.text(`Refused: ${problem}`, 403);
    }
    c.set("session", session);
    await next();
  };
  app.use("/", auth);
  app.use("/ui/*", auth);

  const ctx = (c: Context<UiEnv>): PageContext => {
    const session = c.get("session");
    const flash = flashes.get(session) ?? {};
    flashes.delete(session);
    return { csrf: session.csrf, canSignOut: !!options.adminKey, ...flash };
  };
  /** After a POST: the outcome shown once on the next page (never in the URL), then 303. */
  const done = (c: Context<UiEnv>, flash: Flash, to: string) => {
    flashes.set(c.get("session"), { notice: flash.notice, error: flash.error });
    return c.redirect(to, 303);
  };
  const back = (c: Context, fallback: string): string => {
    const ref = c.req.header("referer");
    if (!ref) return fallback;
    try {
      const url = new URL(ref);
      return url.origin === publicOrigin(c) && isUiPath(url.pathname)
        ? url.pathname + url.search
        : fallback;
    } catch {
      return fallback;
    }
  };
  const clients = (c: Context<UiEnv>) => Object.keys(c.get("deps").services.config.clients);
  const shown = (job: Parameters<typeof jobRecord>[0]) => scrub(jobRecord(job)) as JobRecord;

  app.post("/ui/logout", (c) => {
    sessions.delete(c.get("session").id);
    deleteCookie(c, SESSION_COOKIE, { path: "/", secure: isTls(c) });
    return c.redirect(options.adminKey ? "/ui/login" : "/", 303);
  });

  app.get("/ui", (c) => c.redirect("/", 303));

  app.get("/", async (c) => {
    const at = now();
    const rows = await overviewRows(c.get("deps").services, at, c.get("deps").startedAt);
    return page(c, <OverviewPage ctx={ctx(c)} rows={rows} now={at} />);
  });

  app.get("/ui/clients/:name", async (c) => {
    const { services } = c.get("deps");
    const name = c.req.param("name");
    const client = requireClient(services.config, name);
    const { backups } = await listBackups(services.repository, { client: name, limit: 200 });
    const encryption = await decryptor(c);
    return page(
      c,
      <ClientPage
        ctx={ctx(c)}
        name={name}
        shown={scrub({ name, ...redactClient(client) }) as Record<string, unknown>}
        backups={backups.map((m) => ({
          summary: manifestSummary(m),
          encryption: encryption(m),
        }))}
      />,
    );
  });

  app.post("/ui/clients/:name/backup", async (c) => {
    const name = c.req.param("name");
    const out = await apiOutcome(
      await api("POST", "/admin/backups", { json: { client_name: name } }),
    );
    return done(
      c,
      out.data ? { notice: `${out.notice}: job ${out.data.job_id}` } : out,
      `/ui/jobs?client=${encodeURIComponent(name)}`,
    );
  });

  app.get("/ui/backup", async (c) => {
    const { services } = c.get("deps");
    const key = c.req.query("key") ?? "";
    const manifest = await readManifest(services.repository, key);
    const client = requireClient(services.config, manifest.client_name);
    return page(
      c,
      <BackupPage
        ctx={ctx(c)}
        backup={{
          summary: manifestSummary(manifest),
          encryption: (await decryptor(c))(manifest),
        }}
        options={restoreOptions(client.kind)}
      />,
    );
  });

  app.get("/ui/download", async (c) => {
    const key = c.req.query("key") ?? "";
    const range = c.req.header("range");
    const res = await api("GET", `${keyPath(key)}/download`, {
      headers: range ? { range } : {},
    });
    if (!res.ok && res.status !== 416) {
      const out = await apiOutcome(res);
      throw new CairnError("BACKUP_NOT_FOUND", out.error ?? "Download failed");
    }
    const h = new Headers();
    for (
      const name of [
        "content-type",
        "content-disposition",
        "content-length",
        "content-range",
        "accept-ranges",
        "x-checksum-sha256",
      ]
    ) {
      const v = res.headers.get(name);
      if (v) h.set(name, v);
    }
    return new Response(res.body, { status: res.status, headers: h });
  });

  app.post("/ui/backup/verify", async (c) => {
    const form = await c.req.parseBody();
    const key = formString(form, "key") ?? "";
    const out = await apiOutcome(await api("POST", `${keyPath(key)}/verify`, { json: {} }));
    return done(
      c,
      out.data ? { notice: `${out.notice}: job ${out.data.job_id}` } : out,
      out.data ? `/ui/jobs?kind=verify` : back(c, "/"),
    );
  });

  app.post("/ui/backup/delete", async (c) => {
    const form = await c.req.parseBody();
    const key = formString(form, "key") ?? "";
    if (formString(form, "confirm") !== "yes") {
      return done(c, { error: "Tick the confirmation to delete a backup" }, back(c, "/"));
    }
    const manifest = await readManifest(c.get("deps").services.repository, key);
    const out = await apiOutcome(await api("DELETE", keyPath(key)));
    return done(c, out, `/ui/clients/${encodeURIComponent(manifest.client_name)}`);
  });

  /** The restore body from the form: only what the form set, in the API's field names. */
  const restoreFields = (form: Record<string, unknown>) => {
    const fields: Record<string, string> = { key: formString(form, "key") ?? "" };
    for (const name of ["target", "tables"]) {
      const v = formString(form, name);
      if (v) fields[name] = v;
    }
    for (const name of ["replace", "flush", "no_owner", "keep_old"]) {
      if (formString(form, name) === "true") fields[name] = "true";
    }
    return fields;
  };

  /**
   * Refuses, before anything is enqueued, a restore this host cannot decrypt: the job
   * would only fail with IDENTITY_MISSING. The button is disabled too; this is the check.
   */
  const undecryptable = async (c: Context<UiEnv>, manifest: Manifest) => {
    const blocked = (await decryptor(c))(manifest).restoreBlocked;
    return blocked === null ? null : done(
      c,
      { error: `IDENTITY_MISSING: ${blocked}` },
      `/ui/backup?key=${encodeURIComponent(manifest.key)}`,
    );
  };

  app.post("/ui/restore/confirm", async (c) => {
    const { services } = c.get("deps");
    const fields = restoreFields(await c.req.parseBody());
    const manifest = await readManifest(services.repository, fields.key);
    const refused = await undecryptable(c, manifest);
    if (refused) return refused;
    const client = requireClient(services.config, manifest.client_name);
    return page(
      c,
      <RestoreConfirmPage
        ctx={ctx(c)}
        key={fields.key}
        replaced={replacedDescription(client, fields.target)}
        fields={fields}
      />,
    );
  });

  app.post("/ui/restore", async (c) => {
    const fields = restoreFields(await c.req.parseBody());
    const body: Record<string, unknown> = {};
    if (fields.target) body.target = fields.target;
    if (fields.tables) body.tables = parseTables(fields.tables);
    for (const name of ["replace", "flush", "no_owner", "keep_old"]) {
      if (fields[name]) body[name] = true;
    }
    const refused = await undecryptable(
      c,
      await readManifest(c.get("deps").services.repository, fields.key),
    );
    if (refused) return refused;
    const out = await apiOutcome(
      await api("POST", `${keyPath(fields.key)}/restore`, { json: body }),
    );
    if (!out.data) return done(c, out, `/ui/backup?key=${encodeURIComponent(fields.key)}`);
    return done(
      c,
      { notice: `${out.notice}: job ${out.data.job_id}` },
      `/ui/jobs?client=${encodeURIComponent(out.data.client_name)}`,
    );
  });

  /** The jobs page's filters from its query; unknown statuses and kinds are ignored. */
  const jobFilters = (q: Record<string, string>): JobFilters => ({
    status: (JOB_STATUSES as readonly string[]).includes(q.status ?? "") ? q.status : undefined,
    kind: (JOB_KINDS as readonly string[]).includes(q.kind ?? "") ? q.kind : undefined,
    client: q.client || undefined,
  });
  const storeFilter = (f: JobFilters) => ({
    status: f.status as JobStatus | undefined,
    kind: f.kind as JobKind | undefined,
    client_name: f.client,
  });

  app.get("/ui/jobs", async (c) => {
    const { store } = c.get("deps").services;
    const q = c.req.query();
    const filters = jobFilters(q);
    const result = await store.list(storeFilter(filters), { limit: 100, cursor: q.cursor || null });
    return page(
      c,
      <JobsPage
        ctx={ctx(c)}
        jobs={result.jobs.map(shown)}
        filters={filters}
        clients={clients(c)}
        nextCursor={result.next_cursor}
        firstPage={!q.cursor}
        now={now()}
      />,
    );
  });

  /**
   * The jobs page's poll: jobs newer than `after` (ids only grow) that match the filters,
   * and on a page filtered by status also older jobs updated since `since` that it does
   * not show yet (`seen`): a job reaches a status after later jobs may have. Rows behind
   * a new poller; 204 while there are none, so htmx swaps nothing. At most the newest 100
   * in one poll, as the first page shows.
   */
  app.get("/ui/jobs/rows", async (c) => {
    const q = c.req.query();
    const after = Number(q.after);
    if (!Number.isSafeInteger(after) || after < 0) {
      throw new CairnError("VALIDATION_FAILED", "after must be a job id (0 or more)");
    }
    const since = q.since === undefined ? undefined : Number(q.since);
    if (since !== undefined && (!Number.isSafeInteger(since) || since < 0)) {
      throw new CairnError("VALIDATION_FAILED", "since must be a time in epoch milliseconds");
    }
    const seenList = (q.seen ?? "").split(",").filter((v) => v !== "").map(Number);
    if (seenList.some((id) => !Number.isSafeInteger(id) || id < 1)) {
      throw new CairnError("VALIDATION_FAILED", "seen must be job ids separated by commas");
    }
    const seen = new Set(seenList);
    const filters = jobFilters(q);
    const result = await c.get("deps").services.store.list(storeFilter(filters), { limit: 100 });
    const fresh = result.jobs.filter((j) =>
      j.id > after ||
      (filters.status !== undefined && since !== undefined && j.updated_at >= since &&
        !seen.has(j.id))
    );
    if (fresh.length === 0) return c.body(null, 204);
    const html = await (
      <NewJobRows
        jobs={fresh.map(shown)}
        filters={filters}
        csrf={c.get("session").csrf}
        now={now()}
        previous={{ after, since, seen: seenList }}
      />
    ).toString();
    return c.html(html);
  });

  app.get("/ui/jobs/:id/row", async (c) => {
    const id = Number(c.req.param("id"));
    const job = Number.isSafeInteger(id) ? await c.get("deps").services.store.get(id) : null;
    if (!job) return c.html("", 200);
    return page(c, <JobRow job={shown(job)} csrf={c.get("session").csrf} now={now()} />)
      .then(async (r) => c.html((await r.text()).replace(/^<!DOCTYPE html>/, "")));
  });

  app.post("/ui/jobs/:id/cancel", async (c) => {
    const out = await apiOutcome(
      await api("POST", `/admin/backups/jobs/${encodeURIComponent(c.req.param("id"))}/cancel`),
    );
    return done(c, out, back(c, "/ui/jobs"));
  });

  app.get("/ui/dlq", async (c) => {
    const { store } = c.get("deps").services;
    const [list, total] = await Promise.all([
      store.list({ status: "failed" }, { limit: 200 }),
      store.count({ status: "failed" }),
    ]);
    return page(
      c,
      <DlqPage ctx={ctx(c)} jobs={list.jobs.map(shown)} total={total} clients={clients(c)} />,
    );
  });

  app.post("/ui/dlq/requeue", async (c) => {
    const form = await c.req.parseBody();
    const json: Record<string, string> = {};
    const client = formString(form, "client_name"), kind = formString(form, "kind");
    if (client) json.client_name = client;
    if (kind) json.kind = kind;
    return done(
      c,
      await apiOutcome(await api("POST", "/admin/backups/dlq/requeue", { json })),
      "/ui/dlq",
    );
  });

  app.post("/ui/dlq/cleanup", async (c) => {
    const form = await c.req.parseBody();
    const days = Number(formString(form, "older_than_days"));
    const out = await apiOutcome(
      await api("POST", "/admin/backups/dlq/cleanup", { json: { older_than_days: days } }),
    );
    return done(c, out, "/ui/dlq");
  });

  app.post("/ui/dlq/:id/requeue", async (c) => {
    const id = encodeURIComponent(c.req.param("id"));
    return done(
      c,
      await apiOutcome(await api("POST", `/admin/backups/dlq/${id}/requeue`)),
      "/ui/dlq",
    );
  });

  app.post("/ui/dlq/:id/delete", async (c) => {
    const id = encodeURIComponent(c.req.param("id"));
    return done(c, await apiOutcome(await api("DELETE", `/admin/backups/dlq/${id}`)), "/ui/dlq");
  });

  app.get("/ui/schedules", async (c) => {
    const schedules = await c.get("deps").services.store.listSchedules();
    const at = new Date(now());
    return page(
      c,
      <SchedulesPage
        ctx={ctx(c)}
        clients={clients(c)}
        schedules={schedules.map((s) => ({
          schedule: s,
          preview: cronPreview(s.cron, s.timezone, at),
        }))}
      />,
    );
  });

  app.get("/ui/schedules/preview", async (c) => {
    const cron = c.req.query("cron") ?? "";
    const timezone = c.req.query("timezone") || "UTC";
    const html = await (
      <PreviewList preview={cronPreview(cron, timezone, new Date(now()))} timezone={timezone} />
    ).toString();
    return c.html(html);
  });

  /** The schedule body from the form, in the API's field names. */
  const scheduleBody = (form: Record<string, unknown>) => {
    const retention: Record<string, number> = {};
    for (const name of ["keep_last", "keep_daily"]) {
      const v = formString(form, name);
      if (v !== undefined) retention[name] = Number(v);
    }
    return {
      client_name: formString(form, "client_name"),
      cron: formString(form, "cron") ?? "",
      timezone: formString(form, "timezone") ?? "UTC",
      label: formString(form, "label") ?? "scheduled",
      enabled: formString(form, "enabled") === "true",
      kind: formString(form, "kind") ?? "backup",
      auto_prune: formString(form, "auto_prune") === "true",
      retention,
    };
  };

  const editable = async (c: Context<UiEnv>, id: number) => {
    const s = await c.get("deps").services.store.getSchedule(id);
    if (s && isConfigOwned(s)) {
      throw new CairnError(
        "VALIDATION_FAILED",
        `Schedule ${id} comes from the config file: change it there`,
      );
    }
    return s;
  };

  app.post("/ui/schedules", async (c) => {
    const body = scheduleBody(await c.req.parseBody());
    const out = await apiOutcome(await api("POST", "/admin/backups/schedules", { json: body }));
    return done(c, out, "/ui/schedules");
  });

  app.post("/ui/schedules/:id/toggle", async (c) => {
    const id = Number(c.req.param("id"));
    const s = await editable(c, id);
    if (!s) return done(c, { error: `Schedule ${id} not found` }, "/ui/schedules");
    const out = await apiOutcome(
      await api("PATCH", `/admin/backups/schedules/${id}`, { json: { enabled: !s.enabled } }),
    );
    return done(c, out, "/ui/schedules");
  });

  app.post("/ui/schedules/:id/delete", async (c) => {
    const id = Number(c.req.param("id"));
    await editable(c, id);
    return done(
      c,
      await apiOutcome(await api("DELETE", `/admin/backups/schedules/${id}`)),
      "/ui/schedules",
    );
  });

  app.post("/ui/schedules/:id", async (c) => {
    const id = Number(c.req.param("id"));
    await editable(c, id);
    const body = scheduleBody(await c.req.parseBody());
    const out = await apiOutcome(
      await api("PATCH", `/admin/backups/schedules/${id}`, { json: body }),
    );
    return done(c, out, "/ui/schedules");
  });

  app.get("/ui/notifications", async (c) =>
    page(
      c,
      <NotificationsPage
        ctx={ctx(c)}
        view={await notifications.view()}
        canTest={notifications.sendTest !== undefined}
      />,
    ));

  app.post("/ui/notifications/test", async (c) => {
    const form = await c.req.parseBody();
    if (!notifications.sendTest) {
      return done(c, { error: "Notifications are not configured" }, "/ui/notifications");
    }
    const r = await notifications.sendTest(formString(form, "channel") ?? "");
    return done(c, r.ok ? { notice: r.message } : { error: r.message }, "/ui/notifications");
  });

  return app;
}
