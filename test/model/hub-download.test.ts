// Fetching a model from a Hugging Face-style hub, tested against a local server speaking the hub's
// /<repo>/resolve/<revision>/<file> protocol (with redirects and a token, as the real hub uses).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { downloadModel, hubSourceFromEnv, isHubRepoId } from '../../src/model/hub-download.js';
import { buildTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const TOKEN = 'hf_test_token';
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-hub-'));
const repos: Record<string, string> = {};
const requests: string[] = [];
let hub: http.Server;
let endpoint: string;

before(async () => {
  repos['org/single'] = path.join(root, 'single');
  buildTinyCheckpoint(repos['org/single'], { arch: 'llama', seed: 2 });
  repos['org/sharded'] = path.join(root, 'sharded');
  buildTinyCheckpoint(repos['org/sharded'], { arch: 'qwen2', shards: 3, dtype: 'BF16', seed: 3 });
  hub = http.createServer((req, res) => {
    requests.push(req.url!);
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401).end();
    const blob = /^\/blobs\/([\w-]+)\/([\w.-]+)$/.exec(req.url!);
    if (blob) return void fs.createReadStream(path.join(repos[blob[1]!.replace('--', '/')]!, blob[2]!)).pipe(res);
    const match = /^\/([\w.-]+\/[\w.-]+)\/resolve\/main\/([\w.-]+)$/.exec(req.url!);
    const dir = match ? repos[match[1]!] : undefined;
    if (!dir || !fs.existsSync(path.join(dir, match![2]!))) return void res.writeHead(404).end();
    // Large files are served from elsewhere through a redirect, as the hub's CDN does.
    if (match![2]!.endsWith('.safetensors')) return void res.writeHead(302, { location: `/blobs/${match![1]!.replace('/', '--')}/${match![2]}` }).end();
    res.writeHead(200, { 'content-length': fs.statSync(path.join(dir, match![2]!)).size });
    fs.createReadStream(path.join(dir, match![2]!)).pipe(res);
  });
  await new Promise<void>((resolve) => hub.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(hub.address() as AddressInfo).port}`;
});
after(() => {
  hub.close();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('hub download', () => {
  it('recognises repository ids and not paths', () => {
    assert.ok(isHubRepoId('meta-llama/Llama-2-7b-hf'));
    // "models/demo" has the shape of an id too: an existing folder wins (resolveModelDir checks first).
    for (const notId of ['./x/y', '../a/b', '/abs/path', 'single', 'a/b/c', 'org/..']) assert.ok(!isHubRepoId(notId), notId);
  });

  for (const repo of ['org/single', 'org/sharded']) {
    it(`fetches ${repo} into a folder the engine opens`, async () => {
      const dir = path.join(root, 'out', repo);
      await downloadModel(hubSourceFromEnv(repo, 'main', { HF_ENDPOINT: endpoint, HF_TOKEN: TOKEN }), dir);
      const checkpoint = openCheckpoint(dir);
      assert.equal(checkpoint.spec.numLayers, 2);
      for (const file of fs.readdirSync(repos[repo]!)) {
        assert.deepEqual(fs.readFileSync(path.join(dir, file)), fs.readFileSync(path.join(repos[repo]!, file)), file);
      }
      assert.ok(!fs.readdirSync(dir).some((f) => f.endsWith('.part')));
    });
  }

  it('does not fetch again what is already there', async () => {
    const before = requests.length;
    await downloadModel(hubSourceFromEnv('org/single', 'main', { HF_ENDPOINT: endpoint, HF_TOKEN: TOKEN }), path.join(root, 'out', 'org/single'));
    // Only the optional files the repository lacks are asked for again.
    assert.ok(requests.slice(before).every((u) => !u.endsWith('.safetensors') && !u.endsWith('config.json')));
  });

  it('says what went wrong: unknown repository, missing token', async () => {
    await assert.rejects(downloadModel(hubSourceFromEnv('org/missing', 'main', { HF_ENDPOINT: endpoint, HF_TOKEN: TOKEN }), path.join(root, 'missing')), /org\/missing\/resolve\/main\/config.json: HTTP 404/);
    await assert.rejects(downloadModel(hubSourceFromEnv('org/single', 'main', { HF_ENDPOINT: endpoint }), path.join(root, 'no-token')), /HTTP 401 \(gated or private: set HF_TOKEN\)/);
  });

  it('serves `swserve generate --model org/name` from the hub', async () => {
    const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
    const out = await promisify(execFile)(process.execPath, [main, 'generate', '--model', 'org/single', '--prompt', 'Hi', '--max-tokens', '3'], {
      env: { ...process.env, HF_ENDPOINT: endpoint, HF_TOKEN: TOKEN, SWSERVE_CACHE: path.join(root, 'cache') },
    });
    assert.match(out.stderr, /fetching org\/single/);
    assert.match(out.stderr, /finish=length prompt=3 completion=3/);
    assert.ok(fs.existsSync(path.join(root, 'cache', 'models', 'org--single', 'main', 'model.safetensors')));
  });
});
