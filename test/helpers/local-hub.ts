// A local HTTP server speaking the Hugging Face hub's download protocol, for tests: HEAD/GET
// /{org}/{name}/resolve/{revision}/{file} answered with X-Repo-Commit, ETag (git blob sha1) or, for LFS
// files, X-Linked-Etag (sha256) and X-Linked-Size with a 302 to a CDN path that honours Range; errors
// carry X-Error-Code (RepoNotFound, GatedRepo, EntryNotFound, RevisionNotFound) as the hub's do.
// Faults on demand: a connection cut after N bytes, a corrupt copy, a repository moved elsewhere.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface HubRepoFixture {
  commit: string;
  files: Map<string, Buffer>;
  /** Requests without this token get 401 GatedRepo. */
  gatedToken?: string;
}

export interface HubRequestLog {
  method: string;
  url: string;
  range?: string;
  authorization?: string;
}

export interface LocalHub {
  endpoint: string;
  repos: Map<string, HubRepoFixture>;
  log: HubRequestLog[];
  /** Cut the next CDN transfer of this sha256 after this many bytes. */
  cutOnce: Map<string, number>;
  /** Serve this sha256 with one byte flipped, this many times. */
  corrupt: Map<string, number>;
  /** Old repository id -> new: its resolve URLs answer with a relative 307, as the hub does for renamed repositories. */
  moved: Map<string, string>;
  close(): Promise<void>;
}

export const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
export const gitBlobSha1 = (bytes: Buffer): string => createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
const isLfs = (file: string): boolean => file.endsWith('.safetensors') || file.endsWith('.onnx_data');

/** A repository fixture from a folder of files, at a made-up commit. */
export function repoFromFolder(dir: string, commitSeed: string, gatedToken?: string): HubRepoFixture {
  const files = new Map<string, Buffer>();
  const walk = (sub: string): void => {
    for (const entry of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const name = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(name);
      else files.set(name, fs.readFileSync(path.join(dir, name)));
    }
  };
  walk('');
  return { commit: createHash('sha1').update(commitSeed).digest('hex'), files, gatedToken };
}

export async function startLocalHub(): Promise<LocalHub> {
  const hub: Omit<LocalHub, 'endpoint' | 'close'> = { repos: new Map(), log: [], cutOnce: new Map(), corrupt: new Map(), moved: new Map() };
  const blobs = (): Map<string, Buffer> => {
    const all = new Map<string, Buffer>();
    for (const repo of hub.repos.values()) for (const bytes of repo.files.values()) all.set(sha256(bytes), bytes);
    return all;
  };
  const record = (req: http.IncomingMessage): void => {
    hub.log.push({ method: req.method!, url: req.url!, range: req.headers.range, authorization: req.headers.authorization });
  };
  // Large files live on another origin, as the hub's CDN does, so tokens can be seen not to travel there.
  const cdnServer = http.createServer((req, res) => {
    record(req);
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(req.url!);
    if (!cdn) return void res.writeHead(404).end();
    serveBlob(hub, cdn[1]!, blobs().get(cdn[1]!), req, res);
  });
  const server = http.createServer((req, res) => {
    const url = req.url!;
    record(req);
    const match = /^\/([\w.-]+\/[\w.-]+)\/resolve\/([^/]+)\/((?:[\w-]+\/)?[\w.-]+)$/.exec(url);
    if (!match) return void res.writeHead(404).end();
    const [, repoId, rawRevision, file] = match as unknown as [string, string, string, string];
    const movedTo = hub.moved.get(repoId);
    if (movedTo) return void res.writeHead(307, { location: `/${movedTo}/resolve/${rawRevision}/${file}` }).end();
    const repo = hub.repos.get(repoId);
    const error = (status: number, code: string): void => void res.writeHead(status, { 'x-error-code': code, 'x-error-message': code }).end();
    if (!repo) return error(401, 'RepoNotFound');
    if (repo.gatedToken && req.headers.authorization !== `Bearer ${repo.gatedToken}`) return error(req.headers.authorization ? 403 : 401, 'GatedRepo');
    const revision = decodeURIComponent(rawRevision);
    if (revision !== 'main' && revision !== repo.commit) return error(404, 'RevisionNotFound');
    const bytes = repo.files.get(file);
    if (!bytes) return error(404, 'EntryNotFound');
    const common = { 'x-repo-commit': repo.commit };
    if (isLfs(file)) {
      const origin = `http://127.0.0.1:${(cdnServer.address() as AddressInfo).port}`;
      return void res
        .writeHead(302, { ...common, location: `${origin}/cdn/${sha256(bytes)}`, 'x-linked-etag': `"${sha256(bytes)}"`, 'x-linked-size': String(bytes.length), etag: '"pointer"' })
        .end();
    }
    res.writeHead(200, { ...common, etag: `"${gitBlobSha1(bytes)}"`, 'content-length': String(bytes.length) });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  });
  for (const s of [server, cdnServer]) await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return {
    ...hub,
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const s of [server, cdnServer]) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}

function serveBlob(hub: Omit<LocalHub, 'endpoint' | 'close'>, sha: string, bytes: Buffer | undefined, req: http.IncomingMessage, res: http.ServerResponse): void {
  if (!bytes) return void res.writeHead(404).end();
  let body = bytes;
  const corruptLeft = hub.corrupt.get(sha) ?? 0;
  if (corruptLeft > 0) {
    hub.corrupt.set(sha, corruptLeft - 1);
    body = Buffer.from(bytes);
    body[body.length >> 1] ^= 0xff;
  }
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  if (start >= body.length && range) return void res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
  const part = body.subarray(start);
  res.writeHead(range ? 206 : 200, {
    'content-length': String(part.length),
    ...(range ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
  });
  if (req.method === 'HEAD') return void res.end();
  const cut = hub.cutOnce.get(sha);
  if (cut !== undefined && cut < part.length) {
    hub.cutOnce.delete(sha);
    // Send the first bytes, then drop the connection mid-body as a failing network would.
    res.write(part.subarray(0, cut), () => res.socket?.destroy());
    return;
  }
  res.end(part);
}
