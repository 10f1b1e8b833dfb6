// The main thread's handle on the engine worker: submit a sequence and read its events as an async
// iterable; aborting the signal (a client that went away) cancels it at the worker's next step.
// It also supervises the worker: if the thread dies (a crash the engine could not contain, or an
// out-of-memory kill), every sequence in flight ends with an engine_failure error, subscribers are
// told so, and a new worker loads the same model; while it loads, `generate` refuses.
import { Worker } from 'node:worker_threads';
import type { EngineOptions } from './engine-core.js';
import type { EngineInfo, EngineUpdate, GenerationRequest, SequenceEvent, WorkerInbound, WorkerOutbound } from './protocol.js';

type UpdateListener = (update: EngineUpdate) => void;

interface Pending {
  push(event: SequenceEvent): void;
}

export type EngineState = 'running' | 'restarting' | 'stopped';

type WorkerOptions = Omit<EngineOptions, 'onWarning' | 'onLog'>;

export class EngineClient {
  private readonly pending = new Map<string, Pending>();
  /** Sequences the worker accepted and has not finished: what a crash must account for. */
  private readonly live = new Set<string>();
  private readonly updateListeners = new Set<UpdateListener>();
  private current: EngineState = 'running';
  private restartCount = 0;
  private cancelCount = 0;
  private closing = false;
  private restarting: Promise<void> | undefined;
  private listenerFaultReported = false;
  /** Sent again to a worker that replaces a crashed one. */
  private decodeFrames = false;

  private constructor(
    private worker: Worker,
    readonly info: EngineInfo,
    private readonly options: WorkerOptions,
    private readonly onWarning: (message: string) => void,
    private readonly onLog: (message: string) => void,
  ) {
    this.attach(worker);
  }

  /** Starts the worker and resolves once the model is loaded; warnings (e.g. a CUDA fallback, a restart) go to `onWarning`, progress (quantizing) to `onLog`. */
  static async start(options: WorkerOptions, onWarning: (message: string) => void = () => {}, onLog: (message: string) => void = () => {}): Promise<EngineClient> {
    const { worker, info } = await spawnWorker(options, onWarning, onLog);
    return new EngineClient(worker, info, options, onWarning, onLog);
  }

  /** Every engine update (events, step statistics, load): telemetry subscribes here. */
  onUpdate(listener: UpdateListener): () => void {
    this.updateListeners.add(listener);
    return () => this.updateListeners.delete(listener);
  }

  /** Tells the engine whether decode steps' activation frames are wanted (a WebSocket subscriber); off saves building and posting them per token. */
  setDecodeFrames(wanted: boolean): void {
    this.decodeFrames = wanted;
    this.post({ type: 'frames', decode: wanted });
  }

  /** True while a worker serves; false while a crashed one is being replaced and once stopped. */
  get alive(): boolean {
    return this.current === 'running';
  }

  get state(): EngineState {
    return this.current;
  }

  /** Workers started to replace one that died. */
  get restarts(): number {
    return this.restartCount;
  }

  /** Cancellations sent to the worker (a sequence that finished needs none). */
  get cancelsSent(): number {
    return this.cancelCount;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Events of one sequence, ending with its `finish` (or `error`) event. */
  async *generate(request: GenerationRequest, signal?: AbortSignal): AsyncGenerator<SequenceEvent> {
    if (this.current !== 'running') throw new Error(this.current === 'restarting' ? 'the engine worker is restarting after a crash' : 'the engine has stopped');
    if (this.pending.has(request.id)) throw new Error(`sequence id ${request.id} is already running`);
    const queue: SequenceEvent[] = [];
    let notify: (() => void) | undefined;
    let ended = false;
    this.pending.set(request.id, {
      push(event) {
        queue.push(event);
        notify?.();
      },
    });
    const cancel = (): void => {
      this.cancelCount++;
      this.post({ type: 'cancel', id: request.id });
    };
    signal?.addEventListener('abort', cancel, { once: true });
    this.post({ type: 'submit', request });
    try {
      for (;;) {
        while (queue.length === 0) {
          await new Promise<void>((resolve) => (notify = resolve));
          notify = undefined;
        }
        const event = queue.shift()!;
        ended = event.type === 'finish' || event.type === 'error';
        yield event;
        if (ended) return;
      }
    } finally {
      signal?.removeEventListener('abort', cancel);
      this.pending.delete(request.id);
      // A consumer that stops reading early (e.g. a broken stream) must not leave the sequence running;
      // one that saw (or has waiting) its finish or error has nothing left to cancel.
      if (!ended && !queue.some((e) => e.type === 'finish' || e.type === 'error')) cancel();
    }
  }

  /**
   * Ends the worker thread at once, between two steps, as a crash would; supervision then replaces it.
   * For fault drills and tests. (Not Worker.terminate(): ending the thread while onnxruntime runs
   * aborts the process.) Resolves once the thread has exited.
   */
  async crashWorker(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.post({ type: 'exit', code: 1 });
    await exited;
  }

  /** Stops the worker after cancelling what is in flight. */
  async close(): Promise<void> {
    this.closing = true;
    await this.restarting;
    if (this.current !== 'running') return;
    const closed = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.post({ type: 'shutdown' });
    await closed;
  }

  private attach(worker: Worker): void {
    let crash: Error | undefined;
    worker.on('message', (message: WorkerOutbound) => {
      if (message.type === 'update' && worker === this.worker) this.route(message);
    });
    worker.on('error', (err) => (crash = err));
    worker.on('exit', (code) => {
      if (worker === this.worker) this.onExit(crash ?? new Error(`engine worker exited with code ${code}`));
    });
  }

  private route(update: EngineUpdate): void {
    for (const event of update.events) {
      if (event.type === 'accepted') this.live.add(event.id);
      else if (event.type === 'finish' || event.type === 'error') this.live.delete(event.id);
      this.pending.get(event.id)?.push(event);
    }
    this.publish(update);
  }

  private publish(update: EngineUpdate): void {
    for (const listener of this.updateListeners) {
      try {
        listener(update);
      } catch (err) {
        // A subscriber's bug must not break the message loop every sequence depends on; once is enough.
        if (!this.listenerFaultReported) this.onWarning(`engine update listener failed: ${(err as Error).stack ?? String(err)}`);
        this.listenerFaultReported = true;
      }
    }
  }

  private onExit(cause: Error): void {
    if (this.closing) {
      this.current = 'stopped';
      this.failAll('the engine was shut down');
      return;
    }
    const lost = new Set([...this.live, ...this.pending.keys()]).size;
    this.onWarning(`engine worker died (${cause.message}); failing ${lost} sequence(s) in flight and starting a new worker`);
    this.current = 'restarting';
    this.failAll(`the engine worker died (${cause.message}); retry the request`);
    this.restarting = spawnWorker(this.options, this.onWarning, this.onLog).then(
      async ({ worker }) => {
        if (this.closing) {
          await worker.terminate();
          this.current = 'stopped';
          return;
        }
        this.worker = worker;
        this.attach(worker);
        this.restartCount++;
        this.current = 'running';
        if (this.decodeFrames) this.post({ type: 'frames', decode: true });
        this.onWarning(`engine worker restarted (${this.restartCount} restart(s) since the server started)`);
      },
      (err: Error) => {
        this.current = 'stopped';
        this.onWarning(`engine worker could not be restarted: ${err.message}; the engine is down`);
      },
    );
  }

  /** Ends every sequence in flight with an engine_failure error, for its reader and for subscribers. */
  private failAll(message: string): void {
    const ids = new Set([...this.live, ...this.pending.keys()]);
    const events: SequenceEvent[] = [...ids].map((id) => ({ type: 'error', id, kind: 'engine_failure', message }));
    this.live.clear();
    for (const event of events) this.pending.get(event.id)?.push(event);
    this.publish({ events, load: { running: 0, waiting: 0 } });
  }

  private post(message: WorkerInbound): void {
    if (this.current === 'running') this.worker.postMessage(message);
  }
}

/** A worker with the model loaded. */
function spawnWorker(options: WorkerOptions, onWarning: (message: string) => void, onLog: (message: string) => void): Promise<{ worker: Worker; info: EngineInfo }> {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: options });
  worker.on('message', (message: WorkerOutbound) => {
    if (message.type === 'warning') onWarning(message.message);
    if (message.type === 'log') onLog(message.message);
  });
  return new Promise((resolve, reject) => {
    const onMessage = (message: WorkerOutbound): void => {
      if (message.type === 'ready') {
        worker.off('message', onMessage);
        resolve({ worker, info: message.info });
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
