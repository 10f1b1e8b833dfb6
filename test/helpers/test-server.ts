// A real swserve on loopback (port 0) over a tiny checkpoint with a planted super weight, for API tests.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadServerConfig, type ServerConfig } from '../../src/config/server-config.js';
import type { EngineClient } from '../../src/engine/engine-client.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { buildTinyCheckpoint, type TinyCheckpoint, type TinyModelSpec } from './tiny-checkpoint.js';

export const PLANTED = { layer: 1, row: 7, col: 33 };

export interface TestServer {
  url: string;
  modelId: string;
  checkpoint: TinyCheckpoint;
  engine: EngineClient;
  server: RunningServer;
  close(): Promise<void>;
}

export interface TestServerOptions {
  spec?: Partial<TinyModelSpec>;
  /** Settings layered over config/server.json, e.g. { apiKey: 'k', limits: { maxWaiting: 0 } }. */
  config?: Record<string, unknown>;
  superWeights?: { layer: number; row: number; col: number }[];
  /** Receives the server's log lines (silent by default). */
  log?: (message: string) => void;
  /** Runs on the model folder after it is written and before the server loads it. */
  beforeStart?: (modelDir: string) => void;
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-api-'));
  const dir = path.join(root, 'tiny');
  const checkpoint = buildTinyCheckpoint(dir, { arch: 'llama', numLayers: 3, numKvHeads: 2, seed: 21, plantedSuperWeights: [PLANTED], maxPositionEmbeddings: 512, ...options.spec });
  fs.writeFileSync(path.join(dir, 'super_weights.json'), JSON.stringify({ super_weights: options.superWeights ?? [PLANTED] }));
  options.beforeStart?.(dir);
  const config: ServerConfig = loadServerConfig({
    env: {},
    flags: { model: dir, servedModelName: 'tiny', port: 0, host: '127.0.0.1', pingIntervalSeconds: 0.2, shutdownGraceSeconds: 2, ...options.config },
  });
  const server = await startServer(config, options.log ?? (() => {}));
  let engine: EngineClient;
  try {
    engine = await server.ready;
  } catch (err) {
    await server.shutdown();
    fs.rmSync(root, { recursive: true, force: true });
    throw err;
  }
  return {
    url: server.url,
    modelId: 'tiny',
    checkpoint,
    engine,
    server,
    async close() {
      await server.shutdown();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
