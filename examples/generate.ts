import path from 'node:path';
import { DATA_DIR, fromPretrained, generate, loadTokenizer } from 'shrink-lm';
const dir = path.join(DATA_DIR, 'models', 'stories260K'); // the bundled model (shipped in the package)
const model = fromPretrained(dir);
const tok = loadTokenizer(dir);
const ids = generate(model, tok.encode('Once upon a time'), { maxNewTokens: 40 }); // KV-cached greedy decoding
console.log(tok.decode(ids));
