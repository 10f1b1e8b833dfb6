// openapi.yaml through redocly's recommended rules (@redocly/cli pinned in devDependencies): no
// errors and no warnings, offline.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const REDOCLY = fileURLToPath(new URL('../../../node_modules/.bin/redocly', import.meta.url));

it('redocly lint finds nothing in openapi.yaml', () => {
  // Telemetry and the update check would reach for the network.
  const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' };
  const run = spawnSync(REDOCLY, ['lint', '--format', 'json', 'openapi.yaml'], { cwd: ROOT, env, encoding: 'utf8' });
  const report = JSON.parse(run.stdout) as { totals: { errors: number; warnings: number }; problems: { message: string; location: { pointer: string }[] }[] };
  const problems = report.problems.map((p) => `${p.location[0]?.pointer}: ${p.message}`);
  assert.deepEqual(problems, []);
  assert.deepEqual(report.totals, { ...report.totals, errors: 0, warnings: 0 });
  assert.equal(run.status, 0, run.stderr);
});
