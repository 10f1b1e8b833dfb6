// Fetching a model into the Hugging Face cache, tested against a local server speaking the hub's
// protocol (test/helpers/local-hub.ts): the cache layout huggingface_hub reads and writes, resume after
// a cut, corrupt copies, gated repositories, offline use, and snapshots made by Python tools served as they are.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { hubCacheDir, modelFolderName, repoFolderName } from '../../src/model/hub-cache.js';
import { fetchModel, HubError, hubSourceFromEnv, isHubRepoId, parseHubModelId, placeSnapshot } from '../../src/model/hub-download.js';
import { maxAbsDiff, openHarness } from '../helpers/engine-harness.js';
import { gitBlobSha1, repoFromFolder, sha256, startLocalHub, type LocalHub } from '../helpers/local-hub.js';
import { exportOptimumLayout } from '../helpers/optimum-layout-export.js';
import { buildTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const TOKEN = 'hf_test_token';
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-hub-'));
const folders: Record<string, string> = {};
let hub: LocalHub;
let cacheCount = 0;

/** A fresh, empty cache and the environment pointing at it and the local hub. */
function freshEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: path.join(root, `cache-${cacheCount++}`), ...extra };
}

const fetchInto = (repoId: string, env: NodeJS.ProcessEnv, revision?: string): Promise<string> => fetchModel(hubSourceFromEnv(repoId, revision, env));
/** An address nothing listens on (a port taken and let go again). */
async function closedEndpoint(): Promise<string> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return `http://127.0.0.1:${port}`;
}

const gets = (): string[] => hub.log.filter((r) => r.method === 'GET').map((r) => r.url);

before(async () => {
  folders.single = path.join(root, 'single');
  buildTinyCheckpoint(folders.single, { arch: 'llama', seed: 2 });
  folders.sharded = path.join(root, 'sharded');
  buildTinyCheckpoint(folders.sharded, { arch: 'qwen2', shards: 3, dtype: 'BF16', seed: 3 });
  hub = await startLocalHub();
  hub.repos.set('org/single', repoFromFolder(folders.single, 'single'));
  hub.repos.set('org/sharded', repoFromFolder(folders.sharded, 'sharded'));
  hub.repos.set('org/gated', repoFromFolder(folders.single, 'gated', TOKEN));
  folders.onnx = path.join(root, 'onnx-export');
  exportOptimumLayout(buildTinyCheckpoint(path.join(root, 'onnx-source'), { arch: 'llama', seed: 6 }), folders.onnx, { externalData: true, subfolder: true });
  hub.repos.set('org/onnx', repoFromFolder(folders.onnx, 'onnx'));
});
beforeEach(() => {
  hub.log.length = 0;
});
after(async () => {
  await hub.close();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('hub ids and cache paths', () => {
  it('recognises repository ids and revisions, not paths', () => {
    assert.ok(isHubRepoId('meta-llama/Llama-2-7b-hf'));
    for (const notId of ['./x/y', '../a/b', '/abs/path', 'single', 'a/b/c', 'org/..']) assert.ok(!isHubRepoId(notId), notId);
    assert.deepEqual(parseHubModelId('org/name@v1.0'), { repoId: 'org/name', revision: 'v1.0' });
    assert.deepEqual(parseHubModelId('org/name@refs/pr/1'), { repoId: 'org/name', revision: 'refs/pr/1' });
    assert.equal(parseHubModelId('org/name@../x'), undefined);
  });

  it('puts the cache where huggingface_hub does', () => {
    assert.equal(hubCacheDir({ HF_HUB_CACHE: '/c' }), '/c');
    assert.equal(hubCacheDir({ HUGGINGFACE_HUB_CACHE: '/legacy' }), '/legacy');
    assert.equal(hubCacheDir({ HF_HOME: '/h' }), '/h/hub');
    assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/huggingface/hub');
    assert.equal(hubCacheDir({}), path.join(os.homedir(), '.cache', 'huggingface', 'hub'));
    assert.equal(repoFolderName('meta-llama/Llama-2-7b-hf'), 'models--meta-llama--Llama-2-7b-hf');
  });
});

describe('fetching into the hub cache', () => {
  for (const name of ['single', 'sharded'] as const) {
    it(`writes org/${name} in huggingface_hub's layout, and the engine opens the snapshot`, async () => {
      const env = freshEnv();
      const snapshot = await fetchInto(`org/${name}`, env);
      const fixture = hub.repos.get(`org/${name}`)!;
      const repoDir = path.join(env.HF_HUB_CACHE!, repoFolderName(`org/${name}`));
      assert.equal(snapshot, path.join(repoDir, 'snapshots', fixture.commit));
      assert.equal(fs.readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8'), fixture.commit);
      for (const [file, bytes] of fixture.files) {
        const etag = file.endsWith('.safetensors') ? sha256(bytes) : gitBlobSha1(bytes);
        assert.equal(fs.readlinkSync(path.join(snapshot, file)), `../../blobs/${etag}`, file);
        assert.deepEqual(fs.readFileSync(path.join(snapshot, file)), bytes, file);
      }
      assert.deepEqual(fs.readdirSync(path.join(repoDir, 'blobs')).filter((f) => f.endsWith('.incomplete')), []);
      // Files the repository lacks are remembered as huggingface_hub does.
      assert.ok(fs.existsSync(path.join(repoDir, '.no_exist', fixture.commit, 'chat_template.jinja')));
      const checkpoint = openCheckpoint(snapshot);
      assert.equal(checkpoint.externalDataDir, fs.realpathSync(path.join(repoDir, 'blobs')));
      assert.equal(checkpoint.spec.numLayers, 2);
      assert.equal(modelFolderName(snapshot), `org/${name}`);
    });
  }

  it('fetches an ONNX repository: onnx/model.onnx and the external data it names, linked one folder down', async () => {
    const snapshot = await fetchInto('org/onnx', freshEnv());
    const data = hub.repos.get('org/onnx')!.files.get('onnx/model.onnx_data')!;
    assert.equal(fs.readlinkSync(path.join(snapshot, 'onnx', 'model.onnx_data')), `../../../blobs/${sha256(data)}`);
    const checkpoint = openCheckpoint(snapshot);
    assert.ok(checkpoint.onnx);
    assert.equal(checkpoint.externalDataDir, fs.realpathSync(path.join(snapshot, '..', '..', 'blobs')));
    const placed = path.join(root, 'placed-onnx');
    placeSnapshot(snapshot, placed);
    assert.equal(openCheckpoint(placed).externalDataDir, fs.realpathSync(path.join(placed, 'onnx')));
  });

  it('sends the token to the hub and never to the CDN', async () => {
    await fetchInto('org/single', freshEnv({ HF_TOKEN: TOKEN }));
    const cdn = hub.log.filter((r) => r.url.startsWith('/cdn/'));
    assert.ok(cdn.length > 0 && cdn.every((r) => r.authorization === undefined));
    assert.ok(hub.log.filter((r) => r.url.includes('/resolve/')).every((r) => r.authorization === `Bearer ${TOKEN}`));
  });

  it('asks only for the commit of what it already holds', async () => {
    const env = freshEnv();
    await fetchInto('org/sharded', env);
    hub.log.length = 0;
    await fetchInto('org/sharded', env);
    assert.deepEqual(gets(), []);
    assert.deepEqual(hub.log.map((r) => `${r.method} ${r.url}`), ['HEAD /org/sharded/resolve/main/config.json']);
  });

  it('fetches a revision by commit, and files of later requests at the commit the first one named', async () => {
    const { commit } = hub.repos.get('org/single')!;
    const snapshot = await fetchInto('org/single', freshEnv(), commit);
    assert.ok(snapshot.endsWith(commit));
    hub.log.length = 0;
    const env = freshEnv();
    await fetchInto('org/single', env);
    const resolved = hub.log.filter((r) => r.url.includes('/resolve/')).map((r) => r.url);
    assert.ok(resolved[0]!.includes('/resolve/main/config.json'));
    assert.ok(resolved.slice(1).every((u) => u.includes(`/resolve/${commit}/`)), resolved.join('\n'));
  });

  it('lets two fetches into one cache (replicas on one volume) take turns: each file is transferred once', async () => {
    const env = freshEnv();
    const [a, b] = await Promise.all([fetchInto('org/sharded', env), fetchInto('org/sharded', env)]);
    assert.equal(a, b);
    const cdn = hub.log.filter((r) => r.url.startsWith('/cdn/')).map((r) => r.url);
    assert.equal(cdn.length, new Set(cdn).size, cdn.join('\n'));
    assert.ok(openCheckpoint(a));
  });

  it('follows a relative redirect of a moved repository', async () => {
    hub.moved.set('old/single', 'org/single');
    try {
      const snapshot = await fetchInto('old/single', freshEnv());
      assert.ok(openCheckpoint(snapshot));
    } finally {
      hub.moved.delete('old/single');
    }
  });
});

describe('resumable, verified transfers', () => {
  const weights = (): Buffer => hub.repos.get('org/single')!.files.get('model.safetensors')!;

  it('resumes with Range after the connection is cut mid-file', async () => {
    const half = weights().length >> 1;
    hub.cutOnce.set(sha256(weights()), half);
    const snapshot = await fetchInto('org/single', freshEnv());
    assert.deepEqual(fs.readFileSync(path.join(snapshot, 'model.safetensors')), weights());
    // The second request asks for the rest of what arrived before the cut (no more than was sent).
    const [whole, rest, ...none] = hub.log.filter((r) => r.url === `/cdn/${sha256(weights())}`).map((r) => r.range);
    assert.equal(whole, undefined);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(rest ?? '')?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= half, String(rest));
    assert.deepEqual(none, []);
  });

  it('continues an .incomplete file a previous run left behind', async () => {
    const env = freshEnv();
    const blobs = path.join(env.HF_HUB_CACHE!, repoFolderName('org/single'), 'blobs');
    fs.mkdirSync(blobs, { recursive: true });
    fs.writeFileSync(path.join(blobs, `${sha256(weights())}.incomplete`), weights().subarray(0, 1000));
    const snapshot = await fetchInto('org/single', env);
    assert.deepEqual(fs.readFileSync(path.join(snapshot, 'model.safetensors')), weights());
    assert.deepEqual(hub.log.filter((r) => r.url.startsWith('/cdn/')).map((r) => r.range), ['bytes=1000-']);
  });

  it('detects a corrupt copy by its sha256 and fetches it again', async () => {
    hub.corrupt.set(sha256(weights()), 1);
    const snapshot = await fetchInto('org/single', freshEnv());
    assert.deepEqual(fs.readFileSync(path.join(snapshot, 'model.safetensors')), weights());
    assert.equal(hub.log.filter((r) => r.url.startsWith('/cdn/')).length, 2);
  });

  it('gives up on a source that stays corrupt, keeping nothing', async () => {
    hub.corrupt.set(sha256(weights()), 2);
    const env = freshEnv();
    await assert.rejects(fetchInto('org/single', env), (err: HubError) => err.kind === 'corrupt' && /model.safetensors.*does not match its hash.*twice/.test(err.message));
    const repoDir = path.join(env.HF_HUB_CACHE!, repoFolderName('org/single'));
    assert.deepEqual(fs.readdirSync(path.join(repoDir, 'blobs')).filter((f) => f.startsWith(sha256(weights()))), []);
    assert.ok(!fs.existsSync(path.join(repoDir, 'snapshots', hub.repos.get('org/single')!.commit, 'model.safetensors')));
  });
});

describe('access and offline use', () => {
  it('says a gated repository needs HF_TOKEN, and fetches it with one', async () => {
    await assert.rejects(fetchInto('org/gated', freshEnv()), (err: HubError) => err.kind === 'unauthorized' && /gated or private \(HTTP 401 GatedRepo.*set HF_TOKEN/.test(err.message));
    await assert.rejects(fetchInto('org/gated', freshEnv({ HF_TOKEN: 'hf_wrong' })), /HTTP 403 GatedRepo.*HF_TOKEN is set but not granted access/);
    assert.ok(openCheckpoint(await fetchInto('org/gated', freshEnv({ HF_TOKEN: TOKEN }))));
  });

  it('reads the token huggingface-cli login saved', async () => {
    const home = path.join(root, 'hf-home');
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(path.join(home, 'token'), `${TOKEN}\n`);
    assert.equal(hubSourceFromEnv('org/gated', 'main', { HF_HOME: home }).token, TOKEN);
  });

  it('says a repository does not exist', async () => {
    await assert.rejects(fetchInto('org/missing', freshEnv()), (err: HubError) => err.kind === 'not_found' && /org\/missing does not exist \(HTTP 401 RepoNotFound/.test(err.message));
    await assert.rejects(fetchInto('org/single', freshEnv(), 'v9'), /has no revision v9 \(HTTP 404 RevisionNotFound/);
  });

  it('HF_HUB_OFFLINE=1 serves the cache without a request, and says when the cache has nothing', async () => {
    const env = freshEnv();
    const online = await fetchInto('org/sharded', env);
    hub.log.length = 0;
    assert.equal(await fetchInto('org/sharded', { ...env, HF_HUB_OFFLINE: '1' }), online);
    assert.deepEqual(hub.log, []);
    await assert.rejects(fetchInto('org/single', { ...env, HF_HUB_OFFLINE: 'true' }), (err: HubError) => err.kind === 'offline' && /HF_HUB_OFFLINE is set and the cache .* holds no complete snapshot of org\/single@main/.test(err.message));
  });

  it('serves the cached snapshot when the hub cannot be reached, and says so', async () => {
    const env = freshEnv();
    const online = await fetchInto('org/single', env);
    const notices: string[] = [];
    const unreachable = { ...env, HF_ENDPOINT: await closedEndpoint() };
    assert.equal(await fetchModel(hubSourceFromEnv('org/single', 'main', unreachable), { onNotice: (m) => notices.push(m) }), online);
    assert.match(notices.join(), /could not be reached \(ECONNREFUSED\); serving the cached snapshot/);
    await assert.rejects(fetchInto('org/sharded', unreachable), (err: HubError) => err.kind === 'unreachable');
  });
});

describe('snapshots made by Python tools', () => {
  /** The layout huggingface_hub writes, built by hand: blobs named by hash, relative links in the snapshot. */
  function pythonLayoutSnapshot(cache: string, source: string, commit: string): string {
    const repoDir = path.join(cache, repoFolderName('org/python'));
    const snapshot = path.join(repoDir, 'snapshots', commit);
    fs.mkdirSync(path.join(repoDir, 'blobs'), { recursive: true });
    fs.mkdirSync(snapshot, { recursive: true });
    fs.mkdirSync(path.join(repoDir, 'refs'), { recursive: true });
    fs.writeFileSync(path.join(repoDir, 'refs', 'main'), commit);
    for (const file of fs.readdirSync(source)) {
      const bytes = fs.readFileSync(path.join(source, file));
      const etag = file.endsWith('.safetensors') ? sha256(bytes) : gitBlobSha1(bytes);
      fs.writeFileSync(path.join(repoDir, 'blobs', etag), bytes);
      fs.symlinkSync(`../../blobs/${etag}`, path.join(snapshot, file));
    }
    return snapshot;
  }

  it('serves the snapshot in place with the same logits as the plain folder', async () => {
    const snapshot = pythonLayoutSnapshot(path.join(root, 'python-cache'), folders.sharded!, 'a'.repeat(40));
    const plain = await openHarness(folders.sharded!);
    const linked = await openHarness(snapshot);
    try {
      const prompt = [1, 72, 101, 108];
      const [a, b] = [await plain.run(prompt, [33, 44]), await linked.run(prompt, [33, 44])];
      assert.equal(maxAbsDiff(a.prefill.at(-1)!, b.prefill.at(-1)!), 0);
      assert.equal(maxAbsDiff(a.decode.at(-1)!, b.decode.at(-1)!), 0);
    } finally {
      await plain.release();
      await linked.release();
    }
  });

  it('is found through HF_HUB_OFFLINE=1 by repository id', async () => {
    const cache = path.join(root, 'python-cache-2');
    const snapshot = pythonLayoutSnapshot(cache, folders.single!, 'b'.repeat(40));
    assert.equal(await fetchInto('org/python', { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' }), snapshot);
  });

  it('still refuses links that leave the cache repository', () => {
    const cache = path.join(root, 'python-cache-3');
    const snapshot = pythonLayoutSnapshot(cache, folders.single!, 'c'.repeat(40));
    const outside = path.join(root, 'outside.safetensors');
    fs.copyFileSync(path.join(folders.single!, 'model.safetensors'), outside);
    fs.rmSync(path.join(snapshot, 'model.safetensors'));
    fs.symlinkSync(path.relative(snapshot, outside), path.join(snapshot, 'model.safetensors'));
    assert.throws(() => openCheckpoint(snapshot), /is a link to .*outside\.safetensors, outside the model folder and its hub cache repository/);
  });

  it('places plain files in a folder (swserve download --out)', async () => {
    const snapshot = await fetchInto('org/single', freshEnv());
    const out = path.join(root, 'placed');
    placeSnapshot(snapshot, out);
    for (const file of fs.readdirSync(out)) assert.ok(!fs.lstatSync(path.join(out, file)).isSymbolicLink(), file);
    assert.equal(openCheckpoint(out).externalDataDir, fs.realpathSync(out));
  });
});
