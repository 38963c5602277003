/** @jsxImportSource hono/jsx */
import { JOB_KINDS, type JobRecord } from "../../jobs/types.ts";
import { formatTime } from "../format.ts";
import { ActionButton, Csrf, Layout, type PageContext } from "../layout.tsx";

export function DlqPage(
  props: { ctx: PageContext; jobs: JobRecord[]; total: number; clients: string[] },
) {
  const csrf = props.ctx.csrf;
  return (
    <Layout title="Dead-letter queue" ctx={props.ctx}>
      <p>
        {props.total} failed {props.total === 1 ? "job" : "jobs"}, kept until requeued or deleted.
      </p>
      {props.jobs.length > 0 && (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">ID</th>
                <th scope="col">Kind</th>
                <th scope="col">Client</th>
                <th scope="col">Failed</th>
                <th scope="col">Attempts</th>
                <th scope="col">Error</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {props.jobs.map((j) => (
                <tr id={`dlq-${j.id}`}>
                  <td>{j.id}</td>
                  <td>{j.kind}</td>
                  <td>{j.client_name ?? "–"}</td>
                  <td>{formatTime(j.finished_at)}</td>
                  <td>{j.attempts}/{j.max_attempts}</td>
                  <td>
                    <pre class="error">{j.error ?? ""}</pre>
                  </td>
                  <td>
                    <ActionButton action={`/ui/dlq/${j.id}/requeue`} csrf={csrf} label="Requeue" />
                    {" "}
                    <ActionButton
                      action={`/ui/dlq/${j.id}/delete`}
                      csrf={csrf}
                      label="Delete"
                      danger
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <h2>Bulk requeue</h2>
      <form method="post" action="/ui/dlq/requeue" class="filters">
        <Csrf token={csrf} />
        <div>
          <label for="rq-client">Client</label>
          <select id="rq-client" name="client_name">
            <option value="">all</option>
            {props.clients.map((c) => <option key={c} value={c}>{c}</option>)}
          </select>
        </div>
        <div>
          <label for="rq-kind">Kind</label>
          <select id="rq-kind" name="kind">
            <option value="">all</option>
            {JOB_KINDS.map((k) => <option key={k} value={k}>{k}</option>)}
          </select>
        </div>
        <button type="submit">Requeue matching jobs</button>
      </form>
      <h2>Cleanup</h2>
      <form method="post" action="/ui/dlq/cleanup" class="filters">
        <Csrf token={csrf} />
        <div>
          <label for="older">Delete failed jobs older than (days)</label>
          <input id="older" name="older_than_days" type="number" min="0" value="30" required />
        </div>
        <button type="submit" class="danger">Delete old failed jobs</button>
      </form>
    </Layout>
  );
}
