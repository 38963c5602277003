/** @jsxImportSource hono/jsx */

/** One finished backup run: artifact size (bytes) and duration (ms). */
export interface RunPoint {
  size: number;
  durationMs: number;
}

function polyline(values: number[], width: number, height: number): string {
  const max = Math.max(...values, 1);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values.map((v, i) =>
    `${(i * step).toFixed(1)},${(height - 1 - (v / max) * (height - 2)).toFixed(1)}`
  ).join(" ");
}

/**
 * Size (solid) and duration (dashed) of up to the last 30 runs, oldest left, each line
 * scaled to its own maximum: a sparkline, not a measuring tool. Inline SVG, no script.
 */
export function RunChart(props: { runs: RunPoint[]; label: string }) {
  const width = 120, height = 28;
  const last = props.runs.slice(-30);
  if (last.length === 0) return <span class="muted">no runs</span>;
  // One run is a flat line across, not an invisible point.
  const runs = last.length === 1 ? [last[0], last[0]] : last;
  return (
    <svg
      class="chart"
      width={width}
      height={height}
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-label={props.label}
    >
      <title>{props.label}</title>
      <polyline
        class="size"
        fill="none"
        stroke-width="1.5"
        points={polyline(runs.map((r) => r.size), width, height)}
      />
      <polyline
        class="dur"
        fill="none"
        stroke-width="1"
        stroke-dasharray="3 2"
        points={polyline(runs.map((r) => r.durationMs), width, height)}
      />
    </svg>
  );
}
