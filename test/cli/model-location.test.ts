// What `--model` and `swserve download` do with folders, hub ids and names that are neither, driven
// through the real CLI against a local hub (test/helpers/local-hub.ts).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { repoFolderName } from '../../src/model/hub-cache.js';
import { repoFromFolder, startLocalHub, type LocalHub } from '../helpers/local-hub.js';
import { buildTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-model-arg-'));
const cache = path.join(root, 'hub-cache');
let hub: LocalHub;

async function swserve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const out = await promisify(execFile)(process.execPath, [MAIN, ...args], { cwd: root, env: { ...process.env, HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache, ...env } });
    return { code: 0, ...out };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

before(async () => {
  const dir = path.join(root, 'source');
  buildTinyCheckpoint(dir, { arch: 'llama', seed: 4 });
  hub = await startLocalHub();
  hub.repos.set('org/tiny', repoFromFolder(dir, 'tiny'));
});
after(async () => {
  await hub.close();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('--model', () => {
  it('serves `generate --model org/name` from the hub cache, then from the cache folder itself', async () => {
    const first = await swserve(['generate', '--model', 'org/tiny', '--prompt', 'Hi', '--max-tokens', '3']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /org\/tiny is not a folder here: fetching it from http:\/\/127\.0\.0\.1:\d+ into /);
    assert.match(first.stderr, /finish=length prompt=3 completion=3/);
    const repoDir = path.join(cache, repoFolderName('org/tiny'));
    assert.ok(fs.lstatSync(path.join(repoDir, 'snapshots', hub.repos.get('org/tiny')!.commit, 'model.safetensors')).isSymbolicLink());
    const again = await swserve(['generate', '--model', repoDir, '--prompt', 'Hi', '--max-tokens', '3'], { HF_HUB_OFFLINE: '1' });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /finish=length prompt=3 completion=3/);
  });

  it('says once that a name is neither a folder nor on the hub, and leaves nothing behind', async () => {
    const r = await swserve(['generate', '--model', 'models/nope', '--prompt', 'Hi'], { HF_HUB_CACHE: path.join(root, 'untouched') });
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split('\n');
    assert.match(lines.at(-1)!, /^swserve: --model models\/nope: there is no model folder .*models\/nope, and on the hub: http:\/\/127\.0\.0\.1:\d+\/models\/nope does not exist \(HTTP 401 RepoNotFound/);
    assert.ok(!r.stderr.includes('fetch failed'));
    assert.ok(!fs.existsSync(path.join(root, 'untouched')), 'no cache folders for a model that does not exist');
  });

  it('says what is wrong with a name that is no hub id, a hub it cannot reach, and an empty offline cache', async () => {
    const notId = await swserve(['generate', '--model', 'nope', '--prompt', 'Hi']);
    assert.match(notId.stderr, /--model nope: there is no model folder .*nope, and it is not a hub repository id \(ORG\/NAME or ORG\/NAME@REVISION\)/);
    const unreachable = await swserve(['generate', '--model', 'org/other', '--prompt', 'Hi'], { HF_ENDPOINT: 'http://127.0.0.1:9', HF_HUB_CACHE: path.join(root, 'c2') });
    assert.match(unreachable.stderr, /there is no model folder .*, and on the hub: the hub at http:\/\/127\.0\.0\.1:9 could not be reached/);
    const offline = await swserve(['generate', '--model', 'org/other', '--prompt', 'Hi'], { HF_HUB_OFFLINE: '1' });
    assert.match(offline.stderr, /there is no model folder .*, and HF_HUB_OFFLINE is set and the cache .* holds no complete snapshot of org\/other@main/);
  });
});

describe('swserve download', () => {
  it('prints the snapshot folder, and places plain files with --out', async () => {
    const r = await swserve(['download', 'org/tiny@main']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), path.join(cache, repoFolderName('org/tiny'), 'snapshots', hub.repos.get('org/tiny')!.commit));
    const out = path.join(root, 'plain');
    const placed = await swserve(['download', 'org/tiny', '--out', out]);
    assert.equal(placed.stdout.trim(), out);
    assert.ok(!fs.lstatSync(path.join(out, 'model.safetensors')).isSymbolicLink());
  });

  it('reports progress as plain lines when stderr is no terminal', async () => {
    const r = await swserve(['download', 'org/tiny'], { HF_HUB_CACHE: path.join(root, 'c3') });
    assert.match(r.stderr, /^model\.safetensors \[#{30}\] [\d.]+ MB\/[\d.]+ MB \d+s$/m);
  });
});
