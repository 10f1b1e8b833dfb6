// The main thread's handle on the engine worker: submit a sequence and read its events as an async
// iterable; aborting the signal (a client that went away) cancels it at the worker's next step.
import { Worker } from 'node:worker_threads';
import type { EngineOptions } from './engine-core.js';
import type { EngineInfo, EngineUpdate, GenerationRequest, SequenceEvent, WorkerInbound, WorkerOutbound } from './protocol.js';

type UpdateListener = (update: EngineUpdate) => void;

interface Pending {
  push(event: SequenceEvent): void;
}

export class EngineClient {
  private readonly pending = new Map<string, Pending>();
  private readonly updateListeners = new Set<UpdateListener>();
  private exitError: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly info: EngineInfo,
  ) {
    worker.on('message', (message: WorkerOutbound) => {
      if (message.type !== 'update') return;
      for (const event of message.events) this.pending.get(event.id)?.push(event);
      for (const listener of this.updateListeners) listener(message);
    });
    worker.on('exit', (code) => this.failAll(new Error(`engine worker exited with code ${code}`)));
    worker.on('error', (err) => this.failAll(err));
  }

  /** Starts the worker and resolves once the model is loaded; warnings (e.g. a CUDA fallback) go to `onWarning`. */
  static start(options: Omit<EngineOptions, 'onWarning'>, onWarning: (message: string) => void = () => {}): Promise<EngineClient> {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: options });
    worker.on('message', (message: WorkerOutbound) => {
      if (message.type === 'warning') onWarning(message.message);
    });
    return new Promise((resolve, reject) => {
      const onMessage = (message: WorkerOutbound): void => {
        if (message.type === 'ready') {
          worker.off('message', onMessage);
          resolve(new EngineClient(worker, message.info));
        } else if (message.type === 'load-error') {
          void worker.terminate();
          reject(new Error(message.message));
        }
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`engine worker exited with code ${code} while loading`)));
    });
  }

  /** Every engine update (events, step statistics, load): telemetry subscribes here. */
  onUpdate(listener: UpdateListener): () => void {
    this.updateListeners.add(listener);
    return () => this.updateListeners.delete(listener);
  }

  /** Tells the engine whether decode steps' activation frames are wanted (a WebSocket subscriber); off saves building and posting them per token. */
  setDecodeFrames(wanted: boolean): void {
    this.post({ type: 'frames', decode: wanted });
  }

  /** False once the worker has died; nothing more can be served. */
  get alive(): boolean {
    return this.exitError === undefined;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Events of one sequence, ending with its `finish` (or `error`) event. */
  async *generate(request: GenerationRequest, signal?: AbortSignal): AsyncGenerator<SequenceEvent> {
    if (this.exitError) throw this.exitError;
    if (this.pending.has(request.id)) throw new Error(`sequence id ${request.id} is already running`);
    const queue: SequenceEvent[] = [];
    let notify: (() => void) | undefined;
    this.pending.set(request.id, {
      push(event) {
        queue.push(event);
        notify?.();
      },
    });
    const cancel = (): void => this.post({ type: 'cancel', id: request.id });
    signal?.addEventListener('abort', cancel, { once: true });
    this.post({ type: 'submit', request });
    try {
      for (;;) {
        while (queue.length === 0) {
          if (this.exitError) throw this.exitError;
          await new Promise<void>((resolve) => (notify = resolve));
          notify = undefined;
        }
        const event = queue.shift()!;
        yield event;
        if (event.type === 'finish' || event.type === 'error') return;
      }
    } finally {
      signal?.removeEventListener('abort', cancel);
      // A consumer that stops reading early (e.g. a broken stream) must not leave the sequence running.
      if (this.pending.delete(request.id) && queue.every((e) => e.type !== 'finish' && e.type !== 'error')) cancel();
    }
  }

  /** Stops the worker after cancelling what is in flight. */
  async close(): Promise<void> {
    if (this.exitError) return;
    const closed = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.post({ type: 'shutdown' });
    await closed;
  }

  private post(message: WorkerInbound): void {
    if (!this.exitError) this.worker.postMessage(message);
  }

  private failAll(err: Error): void {
    this.exitError ??= err;
    for (const [id, pending] of this.pending) pending.push({ type: 'error', id, kind: 'engine_failure', message: err.message });
  }
}
