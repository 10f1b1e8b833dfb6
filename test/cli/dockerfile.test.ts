// The container runs node as PID 1: `docker stop` signals PID 1 only, and swserve drains on SIGTERM.
// A shell or npm in between would get the signal instead (npm exits, node is orphaned without it).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

it('the Dockerfile starts node directly, in exec form, on the built CLI', () => {
  const lines = fs.readFileSync(`${ROOT}Dockerfile`, 'utf8').split('\n').filter((l) => /^(CMD|ENTRYPOINT)\s/.test(l));
  assert.ok(lines.length > 0, 'the Dockerfile has a CMD or ENTRYPOINT');
  // The first instruction that decides the process: ENTRYPOINT if there is one, else the last CMD.
  const decisive = lines.find((l) => l.startsWith('ENTRYPOINT')) ?? lines[lines.length - 1]!;
  const argv = JSON.parse(decisive.replace(/^(CMD|ENTRYPOINT)\s+/, '')) as string[];
  assert.ok(Array.isArray(argv), `exec form (a JSON array), not shell form: ${decisive}`);
  assert.equal(argv[0], 'node', decisive);
  assert.ok(fs.existsSync(`${ROOT}${argv[1]}`), `${argv[1]} is what npm run build produces`);
});
