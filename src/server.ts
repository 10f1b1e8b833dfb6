// Starts swserve: the HTTP server listens at once (health answers 503 while the model loads), the
// engine worker loads the model, then the full API takes over. Shutdown (SIGTERM) drains: the
// listener stays open and answers new API requests 503 shutting_down, in-flight requests may finish
// within the grace period, and at its end each one still open is ended with a shutting_down error
// (an error event and [DONE] on a stream, a 503 envelope otherwise) before the engine stops.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Admission } from './api/admission.js';
import type { ApiContext } from './api/api-context.js';
import { createApp, createLoadingApp } from './api/app.js';
import { chatTemplateProblem } from './api/chat/template.js';
import { parseDevice } from './engine/device.js';
import { describeWeights } from './engine/served-weights.js';
import type { ServerConfig } from './config/server-config.js';
import type { EngineClient } from './engine/engine-client.js';
import { startEngineWithSuperWeights } from './superweights/engine-startup.js';
import { coordinateId } from './model/switch-plan.js';
import { modelFolderName } from './model/hub-cache.js';
import { startTelemetry, type Telemetry } from './telemetry/telemetry.js';
import { ConnectionGuard, serverOptions, type ConnectionLimits } from './http/connections.js';
import { ApiError } from './http/errors.js';

export interface RunningServer {
  url: string;
  /** Resolves when the model is loaded and the API serves; rejects if loading fails. */
  ready: Promise<EngineClient>;
  shutdown(): Promise<void>;
}

export type Log = (message: string) => void;

// How often shutdown checks whether in-flight work has drained.
const DRAIN_POLL_MS = 50;
// After the drain, how long ended responses may take to reach their clients before the connections close.
const FLUSH_MS = 1000;

export async function startServer(config: ServerConfig, log: Log = (m) => console.error(m)): Promise<RunningServer> {
  let state: 'loading' | 'failed' | 'ready' = 'loading';
  let handler: http.RequestListener = createLoadingApp(() => (state === 'failed' ? 'failed' : 'loading'));
  const limits = connectionLimits(config);
  const server = http.createServer(serverOptions(limits));
  const connections = new ConnectionGuard(server, limits, log);
  server.on('request', connections.listener(() => handler));
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
  const modelId = config.servedModelName ?? modelFolderName(config.model);
  const ready = startEngineWithSuperWeights({
    engine: {
      modelDir: config.model,
      device: parseDevice(config.device),
      instrument: config.instrument,
      limits: { maxNumSeqs: config.limits.maxNumSeqs, maxNumBatchedTokens: config.limits.maxNumBatchedTokens, maxPrefillTokensWhileDecoding: config.limits.maxPrefillTokensWhileDecoding },
      weights: config.weights,
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
      const templateProblem = chatTemplateProblem(modelId, engine.info.chatTemplate);
      if (templateProblem) log(`warning: ${templateProblem}`);
      log(`serving ${ctx.modelId} (${engine.info.architecture}, ${(engine.info.parameterCount / 1e6).toFixed(1)}M parameters, ${describeWeights(engine.info.weights)}) on ${s.device}${s.fallbackReason ? ` - ${s.fallbackReason}` : ''}`);
      return engine;
    },
    (err: Error) => {
      state = 'failed';
      log(`model failed to load: ${err.message}`);
      throw err;
    },
  );
  ready.catch(() => {});

  let closing: Promise<void> | undefined;
  const shutdown = async (): Promise<void> => {
    stopping = true;
    // Requests already in flight may finish; those arriving now are answered 503 by the API.
    const inFlight = connections.drain();
    const deadline = Date.now() + config.shutdownGraceSeconds * 1000;
    while (inFlight.some((res) => !res.writableEnded) && Date.now() < deadline) await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
    const unfinished = connections.endAll(new ApiError('shutting_down', 'the server shut down before this request finished'));
    if (unfinished > 0) log(`shutdown: the grace period of ${config.shutdownGraceSeconds}s ran out; ended ${unfinished} request(s) with shutting_down`);
    // Nothing new is accepted from here on; then the engine stops behind the answers just sent.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    if (state === 'ready') await (await ready).close();
    telemetry?.close();
    await Promise.race([closed, new Promise((r) => setTimeout(r, FLUSH_MS).unref())]);
    server.closeAllConnections();
    await closed;
  };
  return {
    url,
    ready,
    shutdown: () => (closing ??= shutdown()),
  };
}

function connectionLimits(config: ServerConfig): ConnectionLimits {
  return { requestTimeoutMs: config.connections.requestTimeoutSeconds * 1000, idleTimeoutMs: config.connections.idleTimeoutSeconds * 1000 };
}
