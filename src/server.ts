// Starts swserve: the HTTP server listens at once (health answers 503 while the model loads), the
// engine worker loads the model, then the full API takes over. SIGTERM-style shutdown stops
// accepting work, lets in-flight requests finish within a grace period, then cancels the rest.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Admission } from './api/admission.js';
import type { ApiContext } from './api/api-context.js';
import { createApp, createLoadingApp } from './api/app.js';
import { parseDevice } from './engine/device.js';
import type { ServerConfig } from './config/server-config.js';
import type { EngineClient } from './engine/engine-client.js';
import { startEngineWithSuperWeights } from './superweights/engine-startup.js';
import { coordinateId } from './model/switch-plan.js';
import { startTelemetry, type Telemetry } from './telemetry/telemetry.js';

export interface RunningServer {
  url: string;
  /** Resolves when the model is loaded and the API serves; rejects if loading fails. */
  ready: Promise<EngineClient>;
  shutdown(): Promise<void>;
}

export type Log = (message: string) => void;

// How often shutdown checks whether in-flight work has drained.
const DRAIN_POLL_MS = 50;

export async function startServer(config: ServerConfig, log: Log = (m) => console.error(m)): Promise<RunningServer> {
  let state: 'loading' | 'failed' | 'ready' = 'loading';
  let handler: http.RequestListener = createLoadingApp(() => (state === 'failed' ? 'failed' : 'loading'));
  const server = http.createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  log(`swserve listening on ${url}; loading ${config.model}`);

  let stopping = false;
  let telemetry: Telemetry | undefined;
  const admission = new Admission(config.limits.maxNumSeqs + config.limits.maxWaiting);
  const modelId = config.servedModelName ?? path.basename(path.resolve(config.model));
  const ready = startEngineWithSuperWeights({
    engine: {
      modelDir: config.model,
      device: parseDevice(config.device),
      instrument: config.instrument,
      limits: { maxNumSeqs: config.limits.maxNumSeqs, maxNumBatchedTokens: config.limits.maxNumBatchedTokens, maxPrefillTokensWhileDecoding: config.limits.maxPrefillTokensWhileDecoding },
    },
    superWeightsFile: config.superWeightsFile,
    aliases: [modelId],
    detectOnLoad: config.detectOnLoad,
    detection: config.detection,
    onWarning: (message) => log(`warning: ${message}`),
    log,
  }).then(
    ({ engine, superWeights }) => {
      telemetry = startTelemetry(engine, server, { ...config.telemetry, apiKey: config.apiKey, shuttingDown: () => stopping, log });
      const ctx: ApiContext = {
        engine,
        modelId,
        config,
        admission,
        shuttingDown: () => stopping,
        metrics: telemetry.metrics,
        probeActivations: telemetry.probeActivations,
        superWeights,
      };
      handler = createApp(ctx);
      state = 'ready';
      const s = engine.info.session;
      log(`super weights: ${superWeights.superWeights.length === 0 ? 'none' : superWeights.superWeights.map(coordinateId).join(', ')} (${superWeights.description})`);
      const t = engine.info.loadMs;
      log(`engine loaded in ${(t.total / 1000).toFixed(2)} s (checkpoint ${t.checkpoint.toFixed(0)} ms, tokenizer ${t.tokenizer.toFixed(0)} ms, graph ${t.graph.toFixed(0)} ms, session ${t.session.toFixed(0)} ms)`);
      log(`serving ${ctx.modelId} (${engine.info.architecture}, ${(engine.info.parameterCount / 1e6).toFixed(1)}M parameters) on ${s.device}${s.fallbackReason ? ` - ${s.fallbackReason}` : ''}`);
      return engine;
    },
    (err: Error) => {
      state = 'failed';
      log(`model failed to load: ${err.message}`);
      throw err;
    },
  );
  ready.catch(() => {});

  return {
    url,
    ready,
    async shutdown() {
      stopping = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const deadline = Date.now() + config.shutdownGraceSeconds * 1000;
      while (admission.used > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
      if (state === 'ready') await (await ready).close();
      telemetry?.close();
      server.closeAllConnections();
      await closed;
    },
  };
}
