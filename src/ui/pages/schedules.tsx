/** @jsxImportSource hono/jsx */
import { type Schedule, SCHEDULE_KINDS } from "../../jobs/types.ts";
import { isConfigOwned } from "../config_owned.ts";
import { type CronPreview, formatInZone } from "../cron_preview.ts";
import { formatTime } from "../format.ts";
import { ActionButton, Csrf, Layout, type PageContext } from "../layout.tsx";

/** The next run times of a cron expression, or why it is refused (an htmx fragment too). */
export function PreviewList(props: { preview: CronPreview; timezone: string; id?: string }) {
  const p = props.preview;
  return (
    <div id={props.id} class="preview" aria-live="polite">
      {p.ok
        ? (
          <ol>
            {p.runs.map((r) => <li key={r.getTime()}>{formatInZone(r, props.timezone)}</li>)}
          </ol>
        )
        : <p class="error">{p.problem}</p>}
    </div>
  );
}

function ScheduleFields(
  props: { prefix: string; clients: string[]; s?: Schedule; previewTarget: string },
) {
  const s = props.s;
  const id = (n: string) => `${props.prefix}-${n}`;
  const preview = {
    "hx-get": "/ui/schedules/preview",
    "hx-trigger": "input changed delay:300ms",
    "hx-target": `#${props.previewTarget}`,
    "hx-include": `#${id("cron")}, #${id("timezone")}`,
    "hx-swap": "innerHTML",
  };
  return (
    <>
      <label for={id("client")}>Client</label>
      <select id={id("client")} name="client_name" required>
        {props.clients.map((c) => (
          <option key={c} value={c} selected={c === s?.client_name}>{c}</option>
        ))}
      </select>
      <label for={id("kind")}>Kind (verify rehearses the newest backup)</label>
      <select id={id("kind")} name="kind">
        {SCHEDULE_KINDS.map((k) => <option key={k} value={k} selected={k === s?.kind}>{k}</option>)}
      </select>
      <label for={id("cron")}>Cron expression (5 fields, or 6 with seconds first)</label>
      <input id={id("cron")} name="cron" type="text" required value={s?.cron ?? ""} {...preview} />
      <label for={id("timezone")}>Time zone (IANA)</label>
      <input
        id={id("timezone")}
        name="timezone"
        type="text"
        required
        value={s?.timezone ?? "UTC"}
        {...preview}
      />
      <label for={id("label")}>Label</label>
      <input id={id("label")} name="label" type="text" value={s?.label ?? "scheduled"} />
      <label for={id("keep_last")}>Retention: keep last (empty: no rule)</label>
      <input
        id={id("keep_last")}
        name="keep_last"
        type="number"
        min="0"
        value={s?.retention.keep_last?.toString() ?? ""}
      />
      <label for={id("keep_daily")}>Retention: keep daily</label>
      <input
        id={id("keep_daily")}
        name="keep_daily"
        type="number"
        min="0"
        value={s?.retention.keep_daily?.toString() ?? ""}
      />
      <label class="check">
        <input type="checkbox" name="enabled" value="true" checked={s ? s.enabled : true} />
        Enabled
      </label>
      <label class="check">
        <input type="checkbox" name="auto_prune" value="true" checked={s ? s.auto_prune : true} />
        Prune by this retention after each backup
      </label>
    </>
  );
}

export function SchedulesPage(
  props: {
    ctx: PageContext;
    schedules: { schedule: Schedule; preview: CronPreview }[];
    clients: string[];
  },
) {
  const csrf = props.ctx.csrf;
  return (
    <Layout title="Schedules" ctx={props.ctx}>
      {props.schedules.length === 0 ? <p>No schedules yet.</p> : (
        props.schedules.map(({ schedule: s, preview }) => {
          const owned = isConfigOwned(s);
          return (
            <section id={`schedule-${s.id}`} aria-labelledby={`sh-${s.id}`}>
              <h2 id={`sh-${s.id}`}>
                #{s.id} {s.client_name} {s.kind}: <code>{s.cron}</code> ({s.timezone}){" "}
                <span class={s.enabled ? "ok" : "muted"}>{s.enabled ? "enabled" : "disabled"}</span>
                {owned && <span class="muted">· from the config (read-only)</span>}
              </h2>
              <p class="muted">
                Label {s.label} · last run {formatTime(s.last_run_at)} · next run{" "}
                {formatTime(s.next_run_at)} · retention {JSON.stringify(s.retention)}
              </p>
              <p>Next 5 runs:</p>
              <PreviewList preview={preview} timezone={s.timezone} />
              {!owned && (
                <p>
                  <ActionButton
                    action={`/ui/schedules/${s.id}/toggle`}
                    csrf={csrf}
                    label={s.enabled ? "Disable" : "Enable"}
                  />{" "}
                  <ActionButton
                    action={`/ui/schedules/${s.id}/delete`}
                    csrf={csrf}
                    label="Delete"
                    danger
                  />
                </p>
              )}
              {!owned && (
                <details>
                  <summary>Edit</summary>
                  <form method="post" action={`/ui/schedules/${s.id}`}>
                    <Csrf token={csrf} />
                    <ScheduleFields
                      prefix={`e${s.id}`}
                      clients={props.clients}
                      s={s}
                      previewTarget={`pv-e${s.id}`}
                    />
                    <div id={`pv-e${s.id}`}></div>
                    <button type="submit">Save</button>
                  </form>
                </details>
              )}
            </section>
          );
        })
      )}
      <h2>New schedule</h2>
      <form method="post" action="/ui/schedules" id="new-schedule">
        <Csrf token={csrf} />
        <ScheduleFields prefix="new" clients={props.clients} previewTarget="pv-new" />
        <p>Next 5 runs:</p>
        <div id="pv-new" class="preview" aria-live="polite">
          <p class="muted">Type a cron expression to see its next runs.</p>
        </div>
        <button type="submit">Create schedule</button>
      </form>
    </Layout>
  );
}
