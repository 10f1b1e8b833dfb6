// `swserve serve`: the OpenAI-compatible server. Flags override SWSERVE_* variables, which override
// the --config file, which overrides config/server.json.
import { parseArgs } from 'node:util';
import { coerce, loadServerConfig, setPath } from '../config/server-config.js';
import { startServer } from '../server.js';
import { resolveModelDir } from './model-location.js';

export const SERVE_USAGE = `swserve serve [--model DIR] [--port N] [--host H] [--device cpu|cuda[:N]] [--api-key K]
                 [--config FILE] [--served-model-name NAME] [--super-weights FILE] [--max-running N]
                 [--max-waiting N] [--max-tokens N] [--max-n N] [--max-body-bytes N] [--shutdown-grace-seconds S]
                 [--detect-on-load]`;

const FLAG_KEYS: Record<string, string> = {
  model: 'model',
  port: 'port',
  host: 'host',
  device: 'device',
  'api-key': 'apiKey',
  'served-model-name': 'servedModelName',
  'super-weights': 'superWeightsFile',
  'max-running': 'limits.maxRunning',
  'max-waiting': 'limits.maxWaiting',
  'max-tokens': 'limits.maxTokens',
  'max-n': 'limits.maxN',
  'max-body-bytes': 'limits.maxBodyBytes',
  'shutdown-grace-seconds': 'shutdownGraceSeconds',
};

export async function runServe(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, 'detect-on-load': { type: 'boolean' }, ...Object.fromEntries(Object.keys(FLAG_KEYS).map((k) => [k, { type: 'string' as const }])) },
  });
  const flags: Record<string, unknown> = {};
  for (const [flag, key] of Object.entries(FLAG_KEYS)) {
    const value = (values as Record<string, string | undefined>)[flag];
    if (typeof value === 'string') setPath(flags, key, key === 'apiKey' || key === 'model' ? value : coerce(value));
  }
  if (values['detect-on-load']) flags.detectOnLoad = true;
  const loaded = loadServerConfig({ file: values.config, env: process.env, flags });
  const config = { ...loaded, model: await resolveModelDir(loaded.model, (m) => console.error(m)) };
  const server = await startServer(config);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    console.error(`${signal}: finishing in-flight requests (up to ${config.shutdownGraceSeconds}s)`);
    server.shutdown().then(
      () => process.exit(0),
      (err: Error) => {
        console.error(`shutdown failed: ${err.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await server.ready;
  } catch {
    await server.shutdown();
    process.exit(1);
  }
}
