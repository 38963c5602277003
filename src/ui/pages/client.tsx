/** @jsxImportSource hono/jsx */
import type { ManifestSummary } from "../../repository/manifest.ts";
import { type Decryptability, shortRecipient } from "../encryption.ts";
import { formatBytes, formatTime } from "../format.ts";
import { ActionButton, Csrf, Layout, type PageContext } from "../layout.tsx";
import type { RestoreOptions } from "../restore_form.ts";

export interface BackupView {
  summary: ManifestSummary;
  encryption: Decryptability;
}

/**
 * A backup's encryption answer, with a data attribute tests and scripts can read and the
 * full public keys on hover (the note shortens them).
 */
function EncryptionNote(props: { encryption: Decryptability }) {
  const e = props.encryption;
  const full = e.matched ?? (e.recipients.length ? e.recipients.join("\n") : undefined);
  return (
    <span
      class={`encryption ${e.canDecrypt === false ? "error" : ""}`.trim()}
      data-encryption={e.state}
      title={full}
    >
      {e.note}
    </span>
  );
}

function backupHref(key: string): string {
  return `/ui/backup?key=${encodeURIComponent(key)}`;
}

export function ClientPage(
  props: {
    ctx: PageContext;
    name: string;
    /** The client's config, redacted as GET /admin/clients shows it. */
    shown: Record<string, unknown>;
    backups: BackupView[];
  },
) {
  return (
    <Layout title={`Client ${props.name}`} ctx={props.ctx}>
      <p>
        <ActionButton
          action={`/ui/clients/${encodeURIComponent(props.name)}/backup`}
          csrf={props.ctx.csrf}
          label="Back up now"
        />{" "}
        <a href={`/ui/jobs?client=${encodeURIComponent(props.name)}`}>Jobs of this client</a>
      </p>
      <details>
        <summary>Configuration (secrets redacted)</summary>
        <pre class="config">{JSON.stringify(props.shown, null, 2)}</pre>
      </details>
      <h2>Backups, newest first</h2>
      {props.backups.length === 0 ? <p>No backups yet.</p> : (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Created</th>
                <th scope="col">Label</th>
                <th scope="col">Size</th>
                <th scope="col">Encryption</th>
                <th scope="col">Key</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {props.backups.map(({ summary: b, encryption }) => (
                <tr data-key={b.key}>
                  <td>{formatTime(b.created_at)}</td>
                  <td>{b.label}</td>
                  <td>{formatBytes(b.size_bytes)}</td>
                  <td>
                    <EncryptionNote encryption={encryption} />
                  </td>
                  <td>
                    <code>{b.key}</code>
                  </td>
                  <td>
                    <a href={`/ui/download?key=${encodeURIComponent(b.key)}`} download>Download</a>
                    {" "}
                    <ActionButton
                      action="/ui/backup/verify"
                      csrf={props.ctx.csrf}
                      label="Verify"
                      fields={{ key: b.key }}
                    />{" "}
                    <a href={backupHref(b.key)}>Restore or delete…</a>
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

export function BackupPage(
  props: {
    ctx: PageContext;
    backup: BackupView;
    options: RestoreOptions;
  },
) {
  const { summary: b, encryption } = props.backup;
  const o = props.options;
  return (
    <Layout title={`Backup of ${b.client_name}`} ctx={props.ctx}>
      <p>
        <code>{b.key}</code> · {formatTime(b.created_at)} · {formatBytes(b.size_bytes)} · {b.kind} ·
        {" "}
        <EncryptionNote encryption={encryption} />
      </p>
      {encryption.recipients.length > 0 && (
        <p class="muted">
          Encrypted for: {encryption.recipients.map((r, i) => (
            <>
              {i > 0 && ", "}
              <code title={r}>{shortRecipient(r)}</code>
            </>
          ))}
        </p>
      )}
      <p>
        <a href={`/ui/clients/${encodeURIComponent(b.client_name)}`}>Back to {b.client_name}</a>
      </p>
      <h2>Restore</h2>
      <form method="post" action="/ui/restore/confirm">
        <Csrf token={props.ctx.csrf} />
        <input type="hidden" name="key" value={b.key} />
        <label for="target">{o.targetLabel}</label>
        <input id="target" name="target" type="text" aria-describedby="target-hint" />
        <p id="target-hint" class="muted">{o.targetHint}</p>
        <label class="check">
          <input type="checkbox" name={o.overwriteFlag} value="true" />
          {o.overwriteLabel}
        </label>
        {o.postgres && (
          <fieldset>
            <legend>PostgreSQL</legend>
            <label for="tables">Only these tables (schema.table, one per line; empty: all)</label>
            <textarea id="tables" name="tables" rows={3}></textarea>
            <label class="check">
              <input type="checkbox" name="no_owner" value="true" />
              No owners and grants (roles missing on the target)
            </label>
            <label class="check">
              <input type="checkbox" name="keep_old" value="true" />
              Keep the replaced database as &lt;name&gt;_pre_restore_&lt;stamp&gt;
            </label>
          </fieldset>
        )}
        {encryption.restoreBlocked === null ? <button type="submit">Review restore…</button> : (
          <>
            <p id="restore-blocked" class="notice error">{encryption.restoreBlocked}</p>
            <button type="submit" disabled aria-describedby="restore-blocked">
              Review restore…
            </button>
          </>
        )}
      </form>
      <h2>Delete</h2>
      <form method="post" action="/ui/backup/delete">
        <Csrf token={props.ctx.csrf} />
        <input type="hidden" name="key" value={b.key} />
        <label class="check">
          <input type="checkbox" name="confirm" value="yes" required />
          Delete this backup and its manifest for good
        </label>
        <button type="submit" class="danger">Delete backup</button>
      </form>
    </Layout>
  );
}

/** The restore, restated before it runs: what is restored, and what it replaces. */
export function RestoreConfirmPage(
  props: { ctx: PageContext; key: string; replaced: string; fields: Record<string, string> },
) {
  return (
    <Layout title="Confirm restore" ctx={props.ctx}>
      <p>
        Restoring <code>{props.key}</code> will replace{" "}
        <strong class="replaced">{props.replaced}</strong>.
      </p>
      <ul>
        {Object.entries(props.fields).filter(([k]) => k !== "key").map(([k, v]) => (
          <li>
            {k}: <code>{k === "target" ? props.replaced : v}</code>
          </li>
        ))}
      </ul>
      <form method="post" action="/ui/restore">
        <Csrf token={props.ctx.csrf} />
        {Object.entries(props.fields).map(([k, v]) => (
          <input key={k} type="hidden" name={k} value={v} />
        ))}
        <button type="submit" class="danger">Restore and replace {props.replaced}</button>{" "}
        <a href={`/ui/backup?key=${encodeURIComponent(props.key)}`}>Cancel</a>
      </form>
    </Layout>
  );
}
