/** @jsxImportSource hono/jsx */
import type { Child } from "hono/jsx";

export interface PageContext {
  csrf: string;
  /** Whether a sign-out button makes sense (false when no admin key is configured). */
  canSignOut: boolean;
  notice?: string;
  error?: string;
}

/** The hidden CSRF field every state-changing form carries. */
export function Csrf(props: { token: string }) {
  return <input type="hidden" name="_csrf" value={props.token} />;
}

/** A one-button POST form (verify, cancel, requeue...): keyboard-usable, CSRF-protected. */
export function ActionButton(
  props: {
    action: string;
    csrf: string;
    label: string;
    danger?: boolean;
    fields?: Record<string, string>;
  },
) {
  return (
    <form class="inline" method="post" action={props.action}>
      <Csrf token={props.csrf} />
      {Object.entries(props.fields ?? {}).map(([k, v]) => (
        <input
          type="hidden"
          name={k}
          value={v}
        />
      ))}
      <button type="submit" class={props.danger ? "danger" : undefined}>{props.label}</button>
    </form>
  );
}

export function Layout(props: { title: string; ctx: PageContext; children: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · cairn`}</title>
        <meta name="htmx-config" content='{"includeIndicatorStyles":false}' />
        <link rel="stylesheet" href="/ui/assets/app.css" />
        <script src="/ui/assets/htmx.js" defer></script>
      </head>
      <body hx-headers={JSON.stringify({ "x-csrf-token": props.ctx.csrf })}>
        <header>
          <strong>cairn</strong>
          <nav aria-label="Main">
            <a href="/">Overview</a>
            <a href="/ui/jobs">Jobs</a>
            <a href="/ui/dlq">Dead letters</a>
            <a href="/ui/schedules">Schedules</a>
            <a href="/ui/notifications">Notifications</a>
          </nav>
          {props.ctx.canSignOut && (
            <form class="inline" method="post" action="/ui/logout">
              <Csrf token={props.ctx.csrf} />
              <button type="submit">Sign out</button>
            </form>
          )}
        </header>
        <main>
          <h1>{props.title}</h1>
          {props.ctx.notice && <p class="notice" role="status">{props.ctx.notice}</p>}
          {props.ctx.error && <p class="notice error" role="alert">{props.ctx.error}</p>}
          {props.children}
        </main>
      </body>
    </html>
  );
}

export function SignInPage(props: { error?: string; retryAfterS?: number }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>Sign in · cairn</title>
        <link rel="stylesheet" href="/ui/assets/app.css" />
      </head>
      <body>
        <main>
          <h1>Sign in to cairn</h1>
          {props.error && <p class="notice error" role="alert">{props.error}</p>}
          <form method="post" action="/ui/login">
            <label for="key">Admin key (server.admin_key)</label>
            <input id="key" name="key" type="password" autocomplete="current-password" required />
            <p>
              <button type="submit">Sign in</button>
            </p>
          </form>
        </main>
      </body>
    </html>
  );
}
