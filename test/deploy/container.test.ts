// The container without a Docker engine: the Dockerfile linted by dockerfile-utils (the Docker
// language server's validator), its images' properties read from the parsed instructions, the README's
// docker commands checked against it, and the production dependencies checked to be enough to run.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import { parse as parseYaml } from 'yaml';
import { parseCommandLine } from '../../src/cli/command-line.js';
import { serveCommand } from '../../src/cli/serve-command.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOCKERFILE = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const IMAGES = ['cpu', 'cuda'];
// Node LTS lines in support (20 reached its end of life in April 2026).
const SUPPORTED_NODE_MAJORS = [22, 24];
const HEALTH_PATH = '/health';

interface Stage {
  name: string;
  base: string;
  instructions: { keyword: string; args: string; json?: string[] }[];
}

function stages(): Stage[] {
  const parsed = DockerfileParser.parse(DOCKERFILE);
  const args = new Map(parsed.getInitialARGs().map((a) => [a.getProperty()!.getName(), a.getProperty()!.getValue() ?? '']));
  const out: Stage[] = [];
  for (const instruction of parsed.getInstructions() as Instruction[]) {
    const keyword = instruction.getKeyword();
    // The instruction's whole text after its keyword, flags (COPY --from=...) included.
    const text = instruction.getTextContent().slice(keyword.length).trim();
    if (keyword === 'FROM') {
      const [image, , name] = text.split(/\s+/);
      out.push({ name: name ?? '', base: image!.replace(/\$\{(\w+)\}/g, (_, v: string) => args.get(v) ?? ''), instructions: [] });
      continue;
    }
    const json = /^\s*\[/.test(text) ? (JSON.parse(text) as string[]) : undefined;
    out.at(-1)?.instructions.push({ keyword, args: text, json });
  }
  return out;
}

const stage = (name: string): Stage => stages().find((s) => s.name === name) ?? assert.fail(`no stage ${name}`);
const last = (s: Stage, keyword: string) => [...s.instructions].reverse().find((i) => i.keyword === keyword);
const all = (s: Stage, keyword: string) => s.instructions.filter((i) => i.keyword === keyword);

/** The stages an image's files come from, itself included (COPY --from and FROM chains). */
function ancestry(name: string, seen = new Set<string>()): Set<string> {
  const s = stages().find((x) => x.name === name);
  if (!s || seen.has(name)) return seen;
  seen.add(name);
  ancestry(s.base, seen);
  for (const copy of all(s, 'COPY')) {
    const from = /--from=(\S+)/.exec(copy.args)?.[1];
    if (from) ancestry(from, seen);
  }
  return seen;
}

/** Shell words of the README's "## Container" sh block, one command per line (continuations joined). */
function readmeDockerCommands(): string[][] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Container'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  return block
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => [...line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!));
}

describe('Dockerfile', () => {
  it('passes the linter', () => {
    assert.deepEqual(validate(DOCKERFILE).map((d) => `line ${d.range.start.line + 1}: ${d.message}`), []);
  });

  it('copies only what .dockerignore lets into the build context', () => {
    // .dockerignore semantics for its plain patterns: the last pattern matching a path decides; "!" keeps it.
    const patterns = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    const ignored = (p: string): boolean =>
      patterns.reduce((verdict, pattern) => {
        const negated = pattern.startsWith('!');
        const base = negated ? pattern.slice(1) : pattern;
        const matches = base.startsWith('*.') ? p.endsWith(base.slice(1)) : p === base || p.startsWith(`${base}/`);
        return matches ? !negated : verdict;
      }, false);
    const sources = stages().flatMap((s) => all(s, 'COPY')).filter((c) => !c.args.includes('--from=')).flatMap((c) => c.args.split(/\s+/).slice(0, -1));
    assert.ok(sources.length > 5);
    for (const source of sources) {
      assert.ok(!ignored(source.replace(/^\.\//, '')), `${source} is excluded by .dockerignore`);
      assert.ok(fs.existsSync(path.join(ROOT, source)), `${source} does not exist`);
    }
  });

  it('builds the CPU image when no target is named', () => {
    assert.equal(stages().at(-1)!.name, 'cpu');
  });

  for (const image of IMAGES) {
    describe(`the ${image} image`, () => {
      it('runs a supported Node LTS (its node binary comes from a node image)', () => {
        const nodeFrom = [...ancestry(image)].map((n) => stage(n).base).find((b) => b.startsWith('node:')) ?? assert.fail('no node image');
        assert.ok(SUPPORTED_NODE_MAJORS.includes(Number(/^node:(\d+)/.exec(nodeFrom)![1])), nodeFrom);
      });

      it('runs as an unprivileged user, with node itself as PID 1', () => {
        const user = last(stage(image), 'USER')?.args;
        assert.ok(user && !['root', '0'].includes(user.split(':')[0]!), `USER ${user}`);
        const entrypoint = last(stage(image), 'ENTRYPOINT')!;
        assert.ok(entrypoint.json, 'exec form, so no shell stands between docker and node');
        assert.equal(entrypoint.json![0], 'node');
        assert.ok(!entrypoint.json!.includes('npm'));
      });

      it('checks /health, keeps the hub cache on a volume, and starts `serve` with valid flags', () => {
        assert.ok(last(stage(image), 'HEALTHCHECK')!.args.includes(HEALTH_PATH));
        const env = all(stage(image), 'ENV').map((e) => e.args).join(' ');
        const hfHome = /HF_HOME=(\S+)/.exec(env)?.[1];
        assert.equal(last(stage(image), 'VOLUME')!.args, hfHome);
        assert.match(env, /HOST=0\.0\.0\.0/);
        const [command, ...flags] = last(stage(image), 'CMD')!.json!;
        assert.equal(command, 'serve');
        assert.ok(parseCommandLine(serveCommand(), flags));
      });

      it('holds production dependencies only', () => {
        const copies = all(stage(image), 'COPY').filter((c) => c.args.includes('node_modules'));
        const from = /--from=(\S+)/.exec(copies[0]!.args)![1]!;
        const installs = [...ancestry(from)].flatMap((n) => all(stage(n), 'RUN').map((r) => r.args)).filter((r) => r.includes('npm ci'));
        assert.ok(installs.length > 0 && installs.every((r) => r.includes('--omit=dev')), installs.join('\n'));
      });
    });
  }

  it('installs the CUDA provider for the cuda image the way the README says', () => {
    const env = [...ancestry('cuda')].flatMap((n) => all(stage(n), 'ENV').map((e) => e.args));
    assert.ok(env.includes('ONNXRUNTIME_NODE_INSTALL=cuda12'));
    assert.match(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8'), /ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci/);
  });
});

describe("the README's docker commands", () => {
  const commands = readmeDockerCommands();
  const volume = last(stage('cpu'), 'VOLUME')!.args;
  const port = last(stage('cpu'), 'EXPOSE')!.args;

  it('name stages that exist', () => {
    const builds = commands.filter((c) => c[1] === 'build');
    assert.ok(builds.length >= 2);
    for (const c of builds) {
      const target = c.indexOf('--target');
      if (target >= 0) assert.ok(IMAGES.includes(c[target + 1]!), c.join(' '));
    }
  });

  it('mount the cache at the volume, publish the exposed port, and pass flags serve accepts', () => {
    const runs = commands.filter((c) => c[1] === 'run');
    assert.ok(runs.length >= 3);
    for (const c of runs) {
      const mounts = c.flatMap((w, i) => (w === '-v' ? [c[i + 1]!] : []));
      assert.ok(mounts.some((m) => m.split(':')[1] === volume || m.split(':')[1]!.startsWith('/models/')), c.join(' '));
      assert.equal(c[c.indexOf('-p') + 1]!.split(':')[1], port);
      const image = c.findIndex((w) => /^swserve(:\w+)?$/.test(w));
      const [command, ...flags] = c.slice(image + 1);
      if (command !== undefined) {
        assert.equal(command, 'serve');
        assert.ok(parseCommandLine(serveCommand(), flags), c.join(' '));
      }
    }
  });

  it('agree with config/docker-compose.yml', () => {
    const compose = parseYaml(fs.readFileSync(path.join(ROOT, 'config', 'docker-compose.yml'), 'utf8')) as {
      services: { swserve: { build: { target: string }; volumes: string[]; command: string[] } };
    };
    const swserve = compose.services.swserve;
    assert.ok(IMAGES.includes(swserve.build.target));
    assert.ok(swserve.volumes.some((v) => v.split(':')[1] === volume));
    assert.equal(swserve.command[0], 'serve');
  });
});

describe('production dependencies', () => {
  it('are all that the server imports', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const allowed = new Set([...Object.keys(pkg.dependencies), ...builtinModules]);
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else if (entry.name.endsWith('.ts')) {
          for (const m of fs.readFileSync(full, 'utf8').matchAll(/^import (?!type )[^;]*? from '([^'.][^']*)'/gm)) {
            const spec = m[1]!.replace(/^node:/, '');
            const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
            if (!allowed.has(name)) offenders.push(`${path.relative(ROOT, full)}: ${m[1]}`);
          }
        }
      }
    };
    walk(path.join(ROOT, 'src'));
    assert.deepEqual(offenders, []);
  });
});
