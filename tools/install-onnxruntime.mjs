// swserve's postinstall: runs onnxruntime-node's own installer (which fetches the CUDA provider
// libraries from NuGet) only when ONNXRUNTIME_NODE_INSTALL asks for it, e.g. `cuda12`. package.json's
// allowScripts denies onnxruntime-node's postinstall, so a plain or offline `npm ci` never downloads.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const wanted = process.env.ONNXRUNTIME_NODE_INSTALL;
if (wanted === undefined || wanted === '' || wanted === 'skip') process.exit(0);

const installer = createRequire(import.meta.url).resolve('onnxruntime-node/script/install');
// Without these the installer takes itself for a checkout of onnxruntime and does nothing.
const env = { ...process.env };
delete env.npm_config_local_prefix;
delete env.npm_package_json;
const run = spawnSync(process.execPath, [installer], { env, stdio: 'inherit' });
process.exit(run.status ?? 1);
