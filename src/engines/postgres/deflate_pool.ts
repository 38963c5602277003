import { CairnError } from "../../errors.ts";
import type { DeflatedPiece } from "./archive_recompress.ts";
import type { DeflateReply, DeflateRequest } from "./deflate_worker.ts";

interface Slot {
  worker: Worker;
  busy: number;
}

/**
 * One core is left to pg_dump, the database and this thread. Past two workers the
 * dump's own pace (pg_dump -Z0 on one core) is the limit, and each worker costs
 * about 25 MiB of RSS.
 */
function defaultThreads(): number {
  return Math.min(2, Math.max(1, (navigator.hardwareConcurrency ?? 1) - 1));
}

/**
 * Workers that deflate pieces for ArchiveRecompressor (how many: defaultThreads).
 * Each piece goes to the least busy worker; its buffer is handed over, not copied.
 * A worker that dies fails every piece still waiting.
 */
export class DeflatePool {
  readonly threads: number;
  readonly #slots: Slot[] = [];
  readonly #waiting = new Map<
    number,
    { slot: Slot; resolve: (p: DeflatedPiece) => void; reject: (e: Error) => void }
  >();
  readonly #level: number;
  #nextId = 0;
  #closed = false;

  constructor(options: { level: number; threads?: number }) {
    this.#level = options.level;
    this.threads = Math.max(1, options.threads ?? defaultThreads());
    for (let i = 0; i < this.threads; i++) {
      const worker = new Worker(new URL("./deflate_worker.ts", import.meta.url).href, {
        type: "module",
      });
      const slot: Slot = { worker, busy: 0 };
      worker.onmessage = (event: MessageEvent<DeflateReply>) => this.#settle(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        this.#failAll(new CairnError("INTERNAL", `Compression worker failed: ${event.message}`));
      };
      this.#slots.push(slot);
    }
  }

  deflate(plain: Uint8Array, headroom: number): Promise<DeflatedPiece> {
    if (this.#closed) return Promise.reject(new CairnError("CANCELLED", "Compression stopped"));
    const slot = this.#slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.#nextId++;
    slot.busy++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { slot, resolve, reject });
      slot.worker.postMessage(
        { id, plain, level: this.#level, headroom } satisfies DeflateRequest,
        [plain.buffer as ArrayBuffer],
      );
    });
  }

  #settle(reply: DeflateReply): void {
    const waiting = this.#waiting.get(reply.id);
    if (!waiting) return;
    this.#waiting.delete(reply.id);
    waiting.slot.busy--;
    if ("error" in reply) {
      waiting.reject(new CairnError("INTERNAL", `Compression failed: ${reply.error}`));
    } else waiting.resolve(reply);
  }

  #failAll(error: Error): void {
    for (const { reject } of this.#waiting.values()) reject(error);
    this.#waiting.clear();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const slot of this.#slots) slot.worker.terminate();
    this.#failAll(new CairnError("CANCELLED", "Compression stopped"));
  }
}
