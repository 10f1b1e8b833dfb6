// A real `ws` client for the activation stream that records every frame and can wait for one.
import WebSocket from 'ws';
import type { EndFrame, StepFrame } from '../../src/telemetry/stream-frames.js';

export type Frame = (StepFrame | EndFrame | { type: 'subscribed'; subscription: Record<string, unknown> } | { type: 'dropped'; count: number; total: number } | { type: 'error'; message: string }) & { type: string };

// How long a test waits for a frame before failing with what it did get.
const FRAME_TIMEOUT_MS = 15_000;

export interface ActivationClient {
  ws: WebSocket;
  frames: Frame[];
  /** Resolves with the first recorded frame (past or future) that matches. */
  waitFor(match: (frame: Frame) => boolean, what: string): Promise<Frame>;
  send(message: unknown): void;
  close(): Promise<void>;
}

export function activationUrl(baseUrl: string, query: Record<string, string> = {}): string {
  const url = new URL('/v1/activations', baseUrl.replace(/^http/, 'ws'));
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  return url.toString();
}

export async function connectActivations(baseUrl: string, query: Record<string, string> = {}, headers: Record<string, string> = {}): Promise<ActivationClient> {
  const ws = new WebSocket(activationUrl(baseUrl, query), { headers });
  const frames: Frame[] = [];
  const waiters = new Set<() => void>();
  ws.on('message', (data) => {
    frames.push(JSON.parse(data.toString()) as Frame);
    for (const wake of waiters) wake();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    ws,
    frames,
    waitFor(match, what) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const found = frames.find(match);
          if (found) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(found);
          }
          return found !== undefined;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${what} frame within ${FRAME_TIMEOUT_MS} ms; got ${JSON.stringify(frames.map((f) => f.type))}`));
        }, FRAME_TIMEOUT_MS);
        if (!check()) waiters.add(check);
      });
    },
    send: (message) => ws.send(typeof message === 'string' ? message : JSON.stringify(message)),
    close: () =>
      new Promise<void>((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.close();
      }),
  };
}

/** The HTTP status a refused upgrade of a ws:// URL answered with. */
export function refusedStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      ws.terminate();
      reject(new Error('the upgrade was accepted'));
    });
    ws.on('error', () => {});
  });
}

export async function complete(baseUrl: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const res = await fetch(`${baseUrl}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`completion answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as Record<string, unknown>;
}
