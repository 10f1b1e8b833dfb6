// The Hugging Face hub cache as huggingface_hub lays it out, so models downloaded by Python tools are
// served in place and ours are theirs: <cache>/models--org--name/{blobs/<etag>, snapshots/<commit>/<file>
// (a relative link to ../../blobs/<etag>), refs/<revision> (the commit), .no_exist/<commit>/<file>}.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A 40-hex git commit id, as the hub's X-Repo-Commit header and the snapshot folders spell it. */
export const COMMIT_PATTERN = /^[0-9a-f]{40}$/;

/** huggingface_hub's constants.py: HF_HUB_CACHE, else the legacy HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE;
  return expandHome(explicit || path.join(hfHome(env), 'hub'));
}

/** $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  return expandHome(env.HF_HOME || path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'huggingface'));
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

/** models--org--name: huggingface_hub's repo_folder_name for model repositories. */
export function repoFolderName(repoId: string): string {
  return `models--${repoId.split('/').join('--')}`;
}

// How deep below snapshots/<commit>/ a model folder may sit (onnx/ in ONNX repositories).
const MAX_SNAPSHOT_DEPTH = 3;

/** A model folder's name for people: "org/name" for a hub cache snapshot (its own name is a commit), else the folder's name. */
export function modelFolderName(dir: string): string {
  const repo = fs.existsSync(dir) ? HubCacheRepo.aboveSnapshot(dir) : undefined;
  const match = repo && /^models--(.+?)--(.+)$/.exec(path.basename(repo.dir));
  return match ? `${match[1]}/${match[2]}` : path.basename(path.resolve(dir));
}

/** One repository's folder in the cache. */
export class HubCacheRepo {
  constructor(readonly dir: string) {}

  static of(cacheDir: string, repoId: string): HubCacheRepo {
    return new HubCacheRepo(path.join(cacheDir, repoFolderName(repoId)));
  }

  /** The repository folder above a snapshot folder (<repo>/snapshots/<commit>), if `dir` is one. */
  static aboveSnapshot(dir: string): HubCacheRepo | undefined {
    // A snapshot's subfolders (onnx/) are real folders; its files are the links.
    for (let at = fs.realpathSync(dir), depth = 0; depth < MAX_SNAPSHOT_DEPTH; at = path.dirname(at), depth++) {
      const snapshots = path.dirname(at);
      const repo = path.dirname(snapshots);
      if (path.basename(snapshots) === 'snapshots' && fs.existsSync(path.join(repo, 'blobs'))) return new HubCacheRepo(repo);
    }
    return undefined;
  }

  /** A repository folder itself (it has snapshots/ and refs/ or blobs/), as a user may point --model at it. */
  static isRepoFolder(dir: string): boolean {
    return fs.existsSync(path.join(dir, 'snapshots')) && (fs.existsSync(path.join(dir, 'refs')) || fs.existsSync(path.join(dir, 'blobs')));
  }

  get blobsDir(): string {
    return path.join(this.dir, 'blobs');
  }

  /** swserve's own lock beside huggingface_hub's in <cache>/.locks/<repo folder>/ (theirs are fcntl locks, which need not hold across machines). */
  lockPath(etag: string): string {
    return path.join(path.dirname(this.dir), '.locks', path.basename(this.dir), `${etag}.swserve.lock`);
  }

  snapshotDir(commit: string): string {
    return path.join(this.dir, 'snapshots', commit);
  }

  blobPath(etag: string): string {
    return path.join(this.blobsDir, etag);
  }

  /** The commit a branch or tag pointed to when last fetched; a commit id is its own answer. */
  readRef(revision: string): string | undefined {
    if (COMMIT_PATTERN.test(revision)) return revision;
    const file = this.refPath(revision);
    if (!file || !fs.existsSync(file)) return undefined;
    const commit = fs.readFileSync(file, 'utf8').trim();
    return COMMIT_PATTERN.test(commit) ? commit : undefined;
  }

  writeRef(revision: string, commit: string): void {
    const file = this.refPath(revision);
    if (!file || revision === commit) return;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // huggingface_hub writes the bare commit, no newline.
    if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== commit) fs.writeFileSync(file, commit);
  }

  /** The snapshot folder of a revision already in the cache, if any. */
  cachedSnapshot(revision: string): string | undefined {
    const commit = this.readRef(revision);
    if (!commit) return undefined;
    const dir = this.snapshotDir(commit);
    return fs.existsSync(dir) ? dir : undefined;
  }

  /** Whether the snapshot holds `file` (a link whose blob is there, or a plain file). */
  hasFile(commit: string, file: string): boolean {
    return fs.existsSync(path.join(this.snapshotDir(commit), file));
  }

  /** Points snapshots/<commit>/<file> at blobs/<etag> through a relative link, as huggingface_hub does. */
  linkBlob(commit: string, file: string, etag: string): void {
    const pointer = path.join(this.snapshotDir(commit), file);
    fs.mkdirSync(path.dirname(pointer), { recursive: true });
    const target = path.relative(path.dirname(pointer), this.blobPath(etag));
    if (fs.lstatSync(pointer, { throwIfNoEntry: false })?.isSymbolicLink() && fs.readlinkSync(pointer) === target) return;
    // Another process may link the same file between our rm and our link; its link is this one.
    fs.rmSync(pointer, { force: true });
    try {
      fs.symlinkSync(target, pointer);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || fs.readlinkSync(pointer) !== target) throw err;
    }
  }

  /** huggingface_hub's .no_exist marker: the repository has no such file at this commit. */
  markMissing(commit: string, file: string): void {
    const marker = path.join(this.dir, '.no_exist', commit, file);
    fs.mkdirSync(path.dirname(marker), { recursive: true });
    fs.writeFileSync(marker, '');
  }

  isKnownMissing(commit: string, file: string): boolean {
    return fs.existsSync(path.join(this.dir, '.no_exist', commit, file));
  }

  private refPath(revision: string): string | undefined {
    // Revisions such as refs/pr/1 nest; anything leaving refs/ is not a revision.
    const file = path.join(this.dir, 'refs', revision);
    return file.startsWith(path.join(this.dir, 'refs') + path.sep) ? file : undefined;
  }
}
