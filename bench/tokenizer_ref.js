#!/usr/bin/env node
// The reference for bench_tokenizer.sh: the npm gpt-3-encoder package
// encoding each line of a file, printing the ids as one JSON array per line
// (the same work and output as `clipcap tokenize --input FILE`). Reports
// the rate of the encode loop alone on stderr.
'use strict';
const fs = require('fs');
const { encode } = require('gpt-3-encoder');
const lines = fs.readFileSync(process.argv[2], 'utf8').split('\n');
if (lines[lines.length - 1] === '') lines.pop();
const out = [];
let tokens = 0;
const t0 = process.hrtime.bigint();
for (const l of lines) {
  const ids = encode(l);
  tokens += ids.length;
  out.push(JSON.stringify(ids));
}
const s = Number(process.hrtime.bigint() - t0) * 1e-9;
fs.writeSync(1, out.join('\n') + '\n');
// Same shape as clipcap's progress line, for bench_tokenizer.sh to read.
console.error(`encode: done ${tokens} token, ${(tokens / s).toFixed(1)} token/s, ${s.toFixed(3)}s`);
