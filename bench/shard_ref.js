#!/usr/bin/env node
// The reference for bench_shard.sh: what a user without clipcap runs to get
// the same result from a COCO caption file: load the JSON, group captions
// per image, tokenise every caption with the npm gpt-3-encoder (GPT-2's
// BPE, the same ids as clipcap), compute ClipCap's max_seq_len, and write
// one JSON line per image (key, captions, token ids). One thread.
'use strict';
const fs = require('fs');
const { encode } = require('gpt-3-encoder');
const doc = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const byImage = new Map();
for (const im of doc.images) byImage.set(im.id, { key: String(im.id), path: im.file_name, captions: [], tokens: [] });
const lens = [];
for (const a of doc.annotations) {
  const r = byImage.get(a.image_id);
  if (!r || typeof a.caption !== 'string') continue;
  const ids = encode(a.caption);
  r.captions.push(a.caption);
  r.tokens.push(ids);
  lens.push(ids.length);
}
const n = lens.length;
const mean = lens.reduce((s, x) => s + x, 0) / n;
const std = Math.sqrt(lens.reduce((s, x) => s + (x - mean) * (x - mean), 0) / (n - 1));
const max = lens.reduce((m, x) => Math.max(m, x), 0);
const out = fs.openSync(process.argv[3], 'w');
let buf = [];
for (const r of [...byImage.values()].sort((a, b) => Number(a.key) - Number(b.key))) {
  buf.push(JSON.stringify(r));
  if (buf.length === 10000) { fs.writeSync(out, buf.join('\n') + '\n'); buf = []; }
}
fs.writeSync(out, buf.join('\n') + '\n');
fs.closeSync(out);
console.log(JSON.stringify({ captions: n, mean, std, max, max_seq_len: Math.min(Math.floor(mean + 10 * std), max) }));
