// The install as npm 11 runs it: no project config keys npm does not know, onnxruntime-node's own
// postinstall denied in allowScripts (so a plain offline `npm ci` can never reach NuGet), and
// swserve's postinstall forwarding to that installer only when ONNXRUNTIME_NODE_INSTALL asks.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const pkg = JSON.parse(fs.readFileSync(`${ROOT}package.json`, 'utf8')) as { scripts: Record<string, string>; allowScripts: Record<string, boolean> };
// A proxy nobody listens on: the installer's download fails at once instead of reaching the network.
const DEAD_PROXY = 'http://127.0.0.1:9';

function postinstall(variable: string | undefined): { status: number | null; output: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, GLOBAL_AGENT_HTTPS_PROXY: DEAD_PROXY, GLOBAL_AGENT_HTTP_PROXY: DEAD_PROXY };
  delete env.ONNXRUNTIME_NODE_INSTALL;
  if (variable !== undefined) env.ONNXRUNTIME_NODE_INSTALL = variable;
  const r = spawnSync('npm', ['run', '--silent', 'postinstall'], { cwd: ROOT, env, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('install', () => {
  it('has no .npmrc keys npm does not know and declares the onnxruntime-node script', () => {
    assert.equal(fs.existsSync(`${ROOT}.npmrc`), false, '.npmrc: npm 11 warns about unknown project config');
    assert.deepEqual(pkg.allowScripts, { 'onnxruntime-node': false });
    assert.equal(pkg.scripts.postinstall, 'node tools/install-onnxruntime.mjs');
  });

  it('downloads nothing without ONNXRUNTIME_NODE_INSTALL, or with skip, and says nothing', () => {
    for (const variable of [undefined, 'skip']) {
      const r = postinstall(variable);
      assert.equal(r.status, 0, r.output);
      assert.equal(r.output, '');
    }
  });

  it('runs the onnxruntime-node installer for ONNXRUNTIME_NODE_INSTALL=cuda12', () => {
    const r = postinstall('cuda12');
    // It went for the CUDA package and met the dead proxy.
    assert.notEqual(r.status, 0);
    assert.match(r.output, /ECONNREFUSED 127\.0\.0\.1:9/);
  });
});
