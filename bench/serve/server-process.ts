// swserve as an operator starts it (`swserve serve`, its own process) for the scenarios that need a
// particular configuration; the time to healthy and the process's memory come with it.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
// A 1B float32 checkpoint loads in seconds; allow for a loaded machine.
const HEALTHY_TIMEOUT_MS = 180_000;
const HEALTH_POLL_MS = 50;

export interface ServerProcess {
  url: string;
  model: string;
  /** Seconds from spawn to the first 200 from /health. */
  secondsToHealthy: number;
  /** Resident and peak resident memory now, in bytes. */
  memory(): { rss: number; peak: number };
  stop(): Promise<void>;
}

export async function startServerProcess(flags: Record<string, string>): Promise<ServerProcess> {
  const started = performance.now();
  const args = [CLI, 'serve', '--port', '0', ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      const match = /listening on (http:\/\/\S+);/.exec(log);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`swserve exited with ${code}: ${log.slice(-2000)}`)));
  });
  const deadline = Date.now() + HEALTHY_TIMEOUT_MS;
  for (;;) {
    const health = await fetch(`${url}/health`).catch(() => undefined);
    if (health?.ok) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`swserve did not become healthy: ${log.slice(-2000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, HEALTH_POLL_MS));
  }
  const secondsToHealthy = (performance.now() - started) / 1000;
  const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
  return {
    url,
    model: models.data[0]!.id,
    secondsToHealthy,
    memory: () => processMemory(child),
    stop: () => stop(child),
  };
}

function processMemory(child: ChildProcess): { rss: number; peak: number } {
  const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await exited;
}
