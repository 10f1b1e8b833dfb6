"""Write the Python encoder's ids for eval.txt (with <s>) so check-tokenizer.mjs can compare."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as D  # noqa: E402
from evaluate import load_tokenizer  # noqa: E402

folder, out = sys.argv[1], sys.argv[2]
bpe = load_tokenizer(folder)
json.dump([D.BOS_ID] + bpe.encode(open(os.path.join(folder, "eval.txt")).read()), open(out, "w"))
