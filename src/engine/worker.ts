// Worker-thread entry: owns the EngineCore (session.run blocks its thread) and speaks the protocol in
// protocol.ts. The loop steps while there is work and sleeps until a message brings some.
import { parentPort, workerData } from 'node:worker_threads';
import { EngineCore, type EngineOptions } from './engine-core.js';
import type { WorkerInbound, WorkerOutbound } from './protocol.js';

const port = parentPort!;
const post = (message: WorkerOutbound): void => port.postMessage(message);

let engine: EngineCore | undefined;
let closing = false;
let wake: (() => void) | undefined;

port.on('message', (message: WorkerInbound) => {
  // In a worker, process.exit ends only this thread. Never while session.run is native: ending a
  // thread inside onnxruntime aborts the whole process, so drills end it here, between steps.
  if (message.type === 'exit') process.exit(message.code);
  if (!engine) return;
  if (message.type === 'submit') engine.submit(message.request);
  else if (message.type === 'cancel') engine.cancel(message.id);
  else if (message.type === 'frames') engine.setDecodeFrames(message.decode);
  else closing = true;
  wake?.();
});

async function main(): Promise<void> {
  try {
    const options: EngineOptions = {
      ...(workerData as EngineOptions),
      onWarning: (message) => post({ type: 'warning', message }),
      onLog: (message) => post({ type: 'log', message }),
    };
    engine = await EngineCore.load(options, (update) => post({ type: 'update', ...update }));
  } catch (err) {
    post({ type: 'load-error', message: (err as Error).message });
    return;
  }
  post({ type: 'ready', info: engine.info });
  while (!closing) {
    if (engine.hasWork) {
      await engine.step();
      // Let queued submits and cancels in before the next step.
      await new Promise((resolve) => setImmediate(resolve));
    } else {
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  }
  await engine.close();
  post({ type: 'closed' });
  port.close();
}

void main();
