/** @jsxImportSource hono/jsx */
import { RunChart } from "../chart.tsx";
import type { OverviewRow } from "../data.ts";
import { formatAge, formatBytes, formatTime } from "../format.ts";
import { Layout, type PageContext } from "../layout.tsx";

export function OverviewPage(props: { ctx: PageContext; rows: OverviewRow[]; now: number }) {
  const { rows, now } = props;
  return (
    <Layout title="Overview" ctx={props.ctx}>
      {rows.length === 0 ? <p>No clients are configured.</p> : (
        <div class="scroll">
          <table>
            <caption class="muted">
              One row per configured client. Chart: size (solid) and duration (dashed) of the last
              30 backups.
            </caption>
            <thead>
              <tr>
                <th scope="col">Client</th>
                <th scope="col">Health</th>
                <th scope="col">Last successful backup</th>
                <th scope="col">Last verification</th>
                <th scope="col">Next run</th>
                <th scope="col">Last 30 runs</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr data-client={r.name}>
                  <td>
                    <a href={`/ui/clients/${encodeURIComponent(r.name)}`}>{r.name}</a>{" "}
                    <span class="muted">{r.kind}</span>
                  </td>
                  <td>
                    <span class={`badge ${r.health}`} data-health={r.health}>{r.health}</span>
                  </td>
                  <td>
                    {r.lastSuccess
                      ? (
                        <>
                          {formatAge(r.lastSuccess.at, now)}
                          <br />
                          <span class="muted">{formatBytes(r.lastSuccess.size)}</span>
                        </>
                      )
                      : <span class="muted">never</span>}
                  </td>
                  <td>
                    {r.lastVerify
                      ? (
                        <>
                          <span class={r.lastVerify.status === "passed" ? "ok" : "failed"}>
                            {r.lastVerify.status}
                          </span>{" "}
                          <span class="muted">{formatAge(r.lastVerify.at, now)}</span>
                        </>
                      )
                      : <span class="muted">none</span>}
                  </td>
                  <td>{r.nextRunAt ? formatTime(r.nextRunAt) : <span class="muted">none</span>}</td>
                  <td>
                    <RunChart
                      runs={r.runs}
                      label={`${r.name}: size and duration of the last ${r.runs.length} backups`}
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Layout>
  );
}
