// config/prometheus/alerts.yml under `promtool test rules`: the super-activation alert fires for a
// server whose original traffic's super activation stays below its share of the float32 reference,
// and not for a healthy one or one with only ablated traffic (config/prometheus/alerts.test.yml).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const TESTS = fileURLToPath(new URL('../../../config/prometheus/alerts.test.yml', import.meta.url));
const RULES = fileURLToPath(new URL('../../../config/prometheus/alerts.yml', import.meta.url));

function promtool(...args: string[]): { status: number | null; output: string; missing: boolean } {
  const run = spawnSync('promtool', args, { encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}`, missing: (run.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT' };
}

describe('Prometheus alert rules', () => {
  it('pass promtool check rules and promtool test rules', (t) => {
    const check = promtool('check', 'rules', RULES);
    if (check.missing) return t.skip('promtool is not installed (Debian package prometheus)');
    assert.equal(check.status, 0, check.output);
    const test = promtool('test', 'rules', TESTS);
    assert.equal(test.status, 0, test.output);
    assert.match(test.output, /SUCCESS/);
  });

});
