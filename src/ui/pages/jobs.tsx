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

export function JobTable(props: { jobs: JobRecord[]; csrf: string; now: number }) {
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
          {props.jobs.map((job) => (
            <JobRow key={job.id} job={job} csrf={props.csrf} now={props.now} />
          ))}
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
    now: number;
  },
) {
  const f = props.filters;
  const next = props.nextCursor
    ? "?" + new URLSearchParams({ ...f as Record<string, string>, cursor: props.nextCursor })
    : null;
  return (
    <Layout title="Jobs" ctx={props.ctx}>
      <form method="get" action="/ui/jobs" class="filters" aria-label="Filter jobs">
        <Select name="status" label="Status" value={f.status} options={JOB_STATUSES} />
        <Select name="kind" label="Kind" value={f.kind} options={JOB_KINDS} />
        <Select name="client" label="Client" value={f.client} options={props.clients} />
        <button type="submit">Filter</button>
      </form>
      <h2>{props.jobs.length ? "Newest first" : "No jobs match"}</h2>
      <JobTable jobs={props.jobs} csrf={props.ctx.csrf} now={props.now} />
      {next && (
        <p>
          <a href={`/ui/jobs${next}`}>Older jobs</a>
        </p>
      )}
    </Layout>
  );
}
