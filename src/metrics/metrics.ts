import { unseen } from "../lazy.ts";
import type { Job } from "../jobs/types.ts";
import type { Services } from "../runtime/services.ts";
import { readSnapshot } from "./snapshot.ts";

type Prom = typeof import("./prom.ts");

/**
 * The daemon's metrics. prom-client (50-60 ms to load) is loaded at the first scrape
 * or the first finished job, not at start.
 */
export class Metrics {
  #prom: Promise<InstanceType<Prom["PromMetrics"]>> | null = null;

  #load() {
    this.#prom ??= (import(unseen("./prom.ts")) as Promise<Prom>).then((m) => new m.PromMetrics());
    return this.#prom;
  }

  /** A job finished in this process: its duration joins the histogram. */
  async observeJob(job: Job): Promise<void> {
    if (job.started_at === null || job.finished_at === null) return;
    const prom = await this.#load();
    prom.observe(
      job.kind,
      job.client_name ?? "",
      job.status,
      (job.finished_at - job.started_at) / 1000,
    );
  }

  /** The exposition text and its content type (text/plain; version=0.0.4). */
  async render(
    services: Services,
    startedAt?: number,
  ): Promise<{ text: string; contentType: string }> {
    const [prom, snapshot] = await Promise.all([
      this.#load(),
      readSnapshot(services, startedAt),
    ]);
    return { text: await prom.render(snapshot), contentType: prom.contentType };
  }
}
