/** @jsxImportSource hono/jsx */
import { JOB_KINDS, JOB_STATUSES, type JobRecord } from "../../jobs/types.ts";
import { formatBytes, formatDuration, formatTime } from "../format.ts";
import { ActionButton, Layout, type PageContext } from "../layout.tsx";

export interface JobFilters {
  status?: string;
  kind?: string;
  client?: string;
}

/** percent, rate and elapsed of a job record, as text; rate is bytes per second since start. */
export function progressText(job: JobRecord, now: number): string {
  const p = job.progress;
  const started = job.started_at ? Date.parse(job.started_at) : null;
  const ended = job.finished_at ? Date.parse(job.finished_at) : now;
  const elapsed = started === null ? null : ended - started;
  const parts: string[] = [];
  if (p?.percent !== null && p?.percent !== undefined) parts.push(`${p.percent} %`);
  if (p) {
    parts.push(
      formatBytes(p.bytes_done) + (p.bytes_total ? ` of ${formatBytes(p.bytes_total)}` : ""),
    );
  }
  if (p && elapsed && elapsed > 0) {
    parts.push(`${formatBytes(Math.round(p.bytes_done / (elapsed / 1000)))}/s`);
  }
  if (elapsed !== null) parts.push(formatDuration(elapsed));
  return parts.join(" · ") || "–";
}

/** One job row. Pending and running rows poll themselves (htmx) until the job ends. */
export function JobRow(props: { job: JobRecord; csrf: string; now: number }) {
  const { job } = props;
  const live = job.status === "pending" || job.status === "running";
  const attrs = live
    ? { "hx-get": `/ui/jobs/${job.id}/row`, "hx-trigger": "every 1s", "hx-swap": "outerHTML" }
    : {};
  return (
    <tr id={`job-${job.id}`} data-status={job.status} {...attrs}>
      <td>{job.id}</td>
      <td>{job.kind}</td>
      <td>{job.client_name ?? "–"}</td>
      <td>
        <span class={`badge ${job.status}`}>{job.status}</span>
        {job.cancel_requested && job.status === "running" ? " (cancelling)" : ""}
      </td>
      <td class="progress">{progressText(job, props.now)}</td>
      <td>{formatTime(job.created_at)}</td>
      <td>
        {job.key ? <code>{job.key}</code> : ""}
        {job.error ? <pre class="error">{job.error}</pre> : ""}
      </td>
      <td>
        {live && (
          <ActionButton
            action={`/ui/jobs/${job.id}/cancel`}
            csrf={props.csrf}
            label="Cancel"
            danger
          />
        )}
      </td>
    </tr>
  );
}

/** The query string of a filter set (empty values left out), for links and polls. */
export function filterQuery(f: JobFilters, extra: Record<string, string> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...f, ...extra })) if (v) q.set(k, v);
  return q.toString();
}

/**
 * Where the jobs page's poll stands: the newest job id shown, and, on a page filtered by
 * status, since when (epoch ms, server clock) and which jobs it shows, so that an older
 * job that reaches that status later is added too (its id is below `after`).
 */
export interface PollState {
  after: number;
  since?: number;
  /** The ids shown (the newest SEEN_MAX), so a job is never added twice. */
  seen?: number[];
}

/** How many shown ids a status-filtered poll carries (a page shows at most 100 rows). */
export const SEEN_MAX = 200;

/**
 * The hidden first row of the first page: it polls for jobs that match the filters and
 * are not shown yet, and is replaced by a poller for what is then shown followed by the
 * new rows, so new jobs appear at the top without a reload (204, nothing swapped, while
 * none).
 */
export function NewJobsPoller(props: { state: PollState; filters: JobFilters }) {
  const extra: Record<string, string> = { after: String(props.state.after) };
  if (props.filters.status && props.state.since !== undefined) {
    extra.since = String(props.state.since);
    extra.seen = (props.state.seen ?? []).join(",");
  }
  return (
    <tr
      id="jobs-poll"
      hidden
      hx-get={`/ui/jobs/rows?${filterQuery(props.filters, extra)}`}
      hx-trigger="every 2s"
      hx-swap="outerHTML"
    >
    </tr>
  );
}

/** The rows a poll adds: the next poller first, then the new jobs, newest first. */
export function NewJobRows(
  props: {
    jobs: JobRecord[];
    filters: JobFilters;
    csrf: string;
    now: number;
    previous: PollState;
  },
) {
  const ids = props.jobs.map((j) => j.id);
  // A second of overlap: a job updated while this poll read the store is looked at
  // again next time, and `seen` keeps it from being added twice.
  const state: PollState = {
    after: Math.max(props.previous.after, ...ids),
    since: props.now - 1000,
    seen: [...(props.previous.seen ?? []), ...ids].slice(-SEEN_MAX),
  };
  return (
    <>
      <NewJobsPoller state={state} filters={props.filters} />
      {props.jobs.map((job) => <JobRow key={job.id} job={job} csrf={props.csrf} now={props.now} />)}
    </>
  );
}

export function JobTable(
  props: {
    jobs: JobRecord[];
    csrf: string;
    now: number;
    /** Set on the first page: new jobs matching these filters are added live. */
    live?: { filters: JobFilters } | null;
  },
) {
  return (
    <div class="scroll">
      <table>
        <thead>
          <tr>
            <th scope="col">ID</th>
            <th scope="col">Kind</th>
            <th scope="col">Client</th>
            <th scope="col">Status</th>
            <th scope="col">Progress</th>
            <th scope="col">Created</th>
            <th scope="col">Key / error</th>
            <th scope="col">Action</th>
          </tr>
        </thead>
        <tbody>
          {props.live && (
            <NewJobsPoller
              state={{
                after: props.jobs.reduce((a, j) => Math.max(a, j.id), 0),
                since: props.now,
                seen: props.jobs.map((j) => j.id).slice(0, SEEN_MAX),
              }}
              filters={props.live.filters}
            />
          )}
          {props.jobs.map((job) => (
            <JobRow key={job.id} job={job} csrf={props.csrf} now={props.now} />
          ))}
          {/* Hidden by the stylesheet once a job row is added above it. */}
          <tr class="empty">
            <td colspan={8}>No jobs match</td>
          </tr>
        </tbody>
      </table>
    </div>
  );
}

function Select(
  props: { name: string; label: string; value?: string; options: readonly string[] },
) {
  return (
    <div>
      <label for={`f-${props.name}`}>{props.label}</label>
      <select id={`f-${props.name}`} name={props.name}>
        <option value="">all</option>
        {props.options.map((o) => (
          <option key={o} value={o} selected={o === props.value}>{o}</option>
        ))}
      </select>
    </div>
  );
}

export function JobsPage(
  props: {
    ctx: PageContext;
    jobs: JobRecord[];
    filters: JobFilters;
    clients: string[];
    nextCursor: string | null;
    /** Whether this is the first page (no cursor): only it gains new jobs live. */
    firstPage: boolean;
    now: number;
  },
) {
  const f = props.filters;
  const next = props.nextCursor ? "?" + filterQuery(f, { cursor: props.nextCursor }) : null;
  return (
    <Layout title="Jobs" ctx={props.ctx}>
      <form method="get" action="/ui/jobs" class="filters" aria-label="Filter jobs">
        <Select name="status" label="Status" value={f.status} options={JOB_STATUSES} />
        <Select name="kind" label="Kind" value={f.kind} options={JOB_KINDS} />
        <Select name="client" label="Client" value={f.client} options={props.clients} />
        <button type="submit">Filter</button>
      </form>
      <h2>Newest first</h2>
      <JobTable
        jobs={props.jobs}
        csrf={props.ctx.csrf}
        now={props.now}
        live={props.firstPage ? { filters: f } : null}
      />
      {next && (
        <p>
          <a href={`/ui/jobs${next}`}>Older jobs</a>
        </p>
      )}
    </Layout>
  );
}
