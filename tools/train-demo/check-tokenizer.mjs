// Checks that the server's tokenizer library loads the demo tokenizer, prepends <s>, round-trips text,
// and agrees token-for-token with the Python encoder used for training (ids written by --ids FILE).
//   node tools/train-demo/check-tokenizer.mjs models/demo [--ids /tmp/py_ids.json]
import { Tokenizer } from "@huggingface/tokenizers";
import fs from "node:fs";

const dir = process.argv[2] ?? "models/demo";
const idsArg = process.argv.indexOf("--ids");
const tok = new Tokenizer(
  JSON.parse(fs.readFileSync(`${dir}/tokenizer.json`, "utf8")),
  JSON.parse(fs.readFileSync(`${dir}/tokenizer_config.json`, "utf8")),
);
let ok = true;
const evalText = fs.readFileSync(`${dir}/eval.txt`, "utf8");
for (const s of ["Hello World", "The jury said it's 12 o'clock.\nNext line,  two  spaces!", evalText]) {
  const e = tok.encode(s);
  const back = tok.decode(e.ids, { skip_special_tokens: true });
  const good = e.ids[0] === 1 && e.ids[1] !== 1 && back === s;
  ok &&= good;
  console.log(`${good ? "ok " : "BAD"} ${e.ids.length} ids, starts ${JSON.stringify(e.ids.slice(0, 6))} ${e.tokens.slice(0, 6).join("|")}`);
}
if (idsArg > 0) {
  const py = JSON.parse(fs.readFileSync(process.argv[idsArg + 1], "utf8"));
  const js = tok.encode(evalText).ids;
  const same = py.length === js.length && py.every((v, i) => v === js[i]);
  ok &&= same;
  console.log(`${same ? "ok " : "BAD"} eval.txt: python ${py.length} ids, js ${js.length} ids, identical: ${same}`);
}
process.exit(ok ? 0 : 1);
