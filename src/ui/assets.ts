// htmx comes from npm (deno.json) as text: `deno compile` embeds it like any module, so the
// binary serves it with nothing fetched at run time.
import htmxSource from "htmx.org/dist/htmx.min.js" with { type: "text" };

/** htmx 2, minified, served at /ui/assets/htmx.js. */
export const HTMX_JS: string = htmxSource;

/** The whole stylesheet: light and dark system themes, phone-width layout. */
export const APP_CSS = `
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f23;--muted:#5c6670;--line:#d8dee4;--accent:#0b5cad;
--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--card:#f6f8fa}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9aa4ae;--line:#30363d;
--accent:#58a6ff;--ok:#3fb950;--warn:#d29922;--bad:#f85149;--card:#161b22}}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:.25rem 1rem;align-items:center;padding:.6rem 1rem;border-bottom:1px solid var(--line)}
header strong{margin-right:.5rem}nav a{margin-right:.8rem}a{color:var(--accent)}
main{padding:1rem;max-width:1200px}h1{font-size:1.4rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:.85rem}
.ok,.completed{color:var(--ok)}.overdue{color:var(--warn)}.failing,.failed,.error{color:var(--bad)}.never{color:var(--muted)}
.badge{font-weight:600}.muted{color:var(--muted)}.notice{padding:.5rem .8rem;border:1px solid var(--line);background:var(--card);margin-bottom:1rem}
.notice.error{border-color:var(--bad)}form.inline{display:inline}fieldset{border:1px solid var(--line);margin:0 0 1rem;padding:.6rem .8rem}
label{display:block;margin:.35rem 0 .15rem}input[type=text],input[type=password],input[type=number],select,textarea{font:inherit;padding:.3rem .4rem;width:100%;max-width:26rem;background:var(--bg);color:var(--fg);border:1px solid var(--line)}
input[type=checkbox]{margin-right:.4rem}label.check{display:flex;align-items:center}
button{font:inherit;padding:.25rem .7rem;border:1px solid var(--line);background:var(--card);color:var(--fg);cursor:pointer}
button.danger{border-color:var(--bad);color:var(--bad)}button:focus-visible,a:focus-visible,input:focus-visible,select:focus-visible{outline:2px solid var(--accent);outline-offset:2px}
svg.chart{vertical-align:middle}svg.chart .size{stroke:var(--accent)}svg.chart .dur{stroke:var(--warn)}
code{font-size:.85em;word-break:break-all}.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end}
.filters>div{min-width:0;max-width:100%}.filters label{margin:0}.filters select{width:auto}tr[id^="job-"]~tr.empty{display:none}tr.empty td{color:var(--muted)}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font-size:.85em}
`;
