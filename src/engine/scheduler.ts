// Bookkeeping only: which sequences run in the next step. Two verbs, as vLLM's scheduler has:
// `schedule()` picks a prefill of waiting sequences (joining the batch) or a decode of the running
// ones; `update()` records what the step finished. No tensors, no onnxruntime.

export interface SchedulerLimits {
  /** Rows in the running batch. */
  maxBatch: number;
  /** Padded tokens (rows x longest prompt) in one prefill step; a longer single prompt runs alone. */
  maxPrefillTokens: number;
}

// Defaults sized for the 2-core CPU machines this runs on: batch 16 keeps a decode step under the
// time of one prefill, and 4096 padded prefill tokens bound the attention-bias tensor to a few MB.
export const DEFAULT_SCHEDULER_LIMITS: SchedulerLimits = { maxBatch: 16, maxPrefillTokens: 4096 };

export interface Schedulable {
  id: string;
  promptLength: number;
  cancelled: boolean;
}

export type ScheduledStep<S> = { kind: 'prefill'; sequences: S[] } | { kind: 'decode'; sequences: S[] } | { kind: 'idle' };

export class Scheduler<S extends Schedulable> {
  private readonly waiting: S[] = [];
  private readonly running = new Map<string, S>();

  constructor(private readonly limits: SchedulerLimits) {}

  get waitingCount(): number {
    return this.waiting.length;
  }

  get runningCount(): number {
    return this.running.size;
  }

  add(sequence: S): void {
    this.waiting.push(sequence);
  }

  find(id: string): S | undefined {
    return this.running.get(id) ?? this.waiting.find((s) => s.id === id);
  }

  /** Cancelled sequences leave at once: waiting ones were never started, running ones are dropped from the batch. */
  takeCancelled(): S[] {
    const cancelled = [...this.waiting.filter((s) => s.cancelled), ...[...this.running.values()].filter((s) => s.cancelled)];
    for (const s of cancelled) this.forget(s.id);
    return cancelled;
  }

  /** Prefill first while there is room, so new requests join the batch at the next step. */
  schedule(): ScheduledStep<S> {
    const room = this.limits.maxBatch - this.running.size;
    if (this.waiting.length > 0 && room > 0) {
      const chosen: S[] = [];
      let longest = 0;
      for (const s of this.waiting) {
        const padded = Math.max(longest, s.promptLength) * (chosen.length + 1);
        if (chosen.length >= room || (chosen.length > 0 && padded > this.limits.maxPrefillTokens)) break;
        chosen.push(s);
        longest = Math.max(longest, s.promptLength);
      }
      return { kind: 'prefill', sequences: chosen };
    }
    if (this.running.size > 0) return { kind: 'decode', sequences: [...this.running.values()] };
    return { kind: 'idle' };
  }

  /** After a step: prefilled sequences join the running batch, finished ones leave. */
  update(step: ScheduledStep<S>, finished: ReadonlySet<string>): void {
    if (step.kind === 'prefill') {
      for (const s of step.sequences) {
        this.waiting.splice(this.waiting.indexOf(s), 1);
        if (!finished.has(s.id)) this.running.set(s.id, s);
      }
    }
    for (const id of finished) this.running.delete(id);
  }

  private forget(id: string): void {
    this.running.delete(id);
    const at = this.waiting.findIndex((s) => s.id === id);
    if (at >= 0) this.waiting.splice(at, 1);
  }
}
