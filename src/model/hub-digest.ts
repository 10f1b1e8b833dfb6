// The hub's ETag is a content hash: sha256 of the file for LFS files (weights), git's blob id
// (sha1 of "blob <size>\0" + content) for files kept in git (config, tokenizer). Checking it catches a
// corrupt or truncated-and-padded download that the size alone would pass.
import { createHash } from 'node:crypto';
import fs from 'node:fs';

const SHA256_ETAG = /^[0-9a-f]{64}$/;
const GIT_SHA1_ETAG = /^[0-9a-f]{40}$/;

/** True when the file's hash is the one the ETag names, or the ETag is not a hash we know (a mirror's own). */
export async function fileDigestMatches(file: string, etag: string, size: number): Promise<boolean> {
  let hash;
  if (SHA256_ETAG.test(etag)) hash = createHash('sha256');
  else if (GIT_SHA1_ETAG.test(etag)) hash = createHash('sha1').update(`blob ${size}\0`);
  else return true;
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex') === etag;
}
