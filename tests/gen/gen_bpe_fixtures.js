#!/usr/bin/env node
// Writes tests/fixtures/bpe/corpus.txt (one text per line) and
// tests/fixtures/bpe/ids.jsonl (the GPT-2 ids of each line, one JSON array
// per line) with the npm gpt-3-encoder package, the reference encoder the C
// tokenizer must match id for id.
//
//   npm install --prefix /tmp/gpt3enc gpt-3-encoder
//   NODE_PATH=/tmp/gpt3enc/node_modules node tests/gen/gen_bpe_fixtures.js
//
// The lines are edge cases (contractions, whitespace runs, \r, accents, CJK,
// emoji with ZWJ, digits, punctuation runs), a few thousand captions from
// templates with random edge chunks mixed in, and random strings over the
// punctuation that GPT-2's merges combine most. Everything is drawn from a
// seeded generator, so a rerun writes the same files. Characters come from
// blocks that Unicode 15 (utf8proc's tables) and Node's newer ICU classify
// the same way (see docs/tokenizer.md).
//
// Also a module: seededRandom is the generator bench/tokenizer_corpus.js
// draws its captions from.
'use strict';
const fs = require('fs');
const path = require('path');

// mulberry32 from a 32-bit seed: the same stream on every Node version, so
// generated files are reproducible. rand() is uniform in [0, 1).
function seededRandom(seed) {
  let state = seed | 0;
  const rand = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { rand, pick: a => a[Math.floor(rand() * a.length)] };
}

const { rand, pick } = seededRandom(0x5eed1234);
const cp = (lo, hi) => String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));

const edge = [
  '', ' ', '  ', '\t', ' \t ', '\r', 'a\r', '\ra', 'a \r b', 'line with crlf\r',
  'Hello world', 'hello  world', 'hello   world', 'hello \t world', ' leading space', '   three leading',
  'trailing space ', 'trailing spaces   ', 'tab\tseparated\tvalues', '\ttab first',
  "it's", "It's", "IT'S", "he's here", "don't", "DON'T", "we're", "they've", "I'm", "you'll", "she'd",
  "'s 't 're 've 'm 'll 'd", "''s", "'''", "rock 'n' roll", "the dog's bone's", "o'clock", "y'all'd've",
  "'S 'T 'RE 'VE 'M 'LL 'D", "x's's", "' s", "'", "''", "'re'", "'ll've",
  'café', 'naïve résumé', 'Ångström', 'São Paulo', 'Zürich straße', 'ĳ ǅ ǈ', 'Ελληνικά γράμματα', 'Русский текст',
  '日本語のテキスト', '中文字符测试', '한국어 텍스트', 'مرحبا بالعالم', 'שלום עולם', 'हिन्दी पाठ', 'ไทย ภาษา',
  '😀', '😀😀😀', 'a 😀 b', '👨‍👩‍👧‍👦', '👩🏽‍💻 at work', '🏳️‍🌈 flag', '❤️', '1️⃣ keycap', '🇯🇵🇫🇷',
  '0', '12', '123', '1234', '12345678901234567890', '3.14159', '1,000,000', '2nd 3rd 4th', '١٢٣ ٤٥٦', '½ ¾ ²³',
  'Ⅻ roman', '①②③', '٣ cats', 'a1b2c3', 'x86_64', 'COVID-19',
  '!', '!!!', '?!?!', '...', '…', '—', '--', '---', '(a)', '[x]', '{y}', '<|endoftext|>', '@user #tag $5 %20 ^ & *',
  '"quoted"', '“curly” ‘single’', '«guillemets»', 'a,b', 'a, b', '",""', '"],"', '"\',"', '\'\',\'', '],[',
  'e.g. i.e. etc.', 'U.S.A.', 'http://example.com/a?b=c&d=e', 'foo@bar.com', 'C++ and C#', '~/path/to/file.txt',
  'a\u00a0b', 'a\u2003b', 'a\u3000b', 'a\u2028b', 'a\u2029b', 'a\ufeffb', 'a\u200bb', 'a\u0085b', 'a\u180eb',
  'a\u000bb', 'a\u000cb', '\u00a0\u00a0x', 'x\u00a0', ' \u00a0 x', '\u2003 x',
  'e\u0301', 'combining a\u0300\u0301\u0302', '\u0000', 'a\u0000b', '\u001f\u007f', '\ufffd', '\uffff', '\u{10ffff}',
  '\u{1d400}\u{1d401} math', '\u{20000} ext-b', 'ＡＢＣ fullwidth', 'ﬁ ligature',
  'A man riding a wave on top of a surfboard.', 'A cat sitting on a laptop keyboard', 'TWO DOGS PLAYING IN THE SNOW',
];

const subjects = ['A man', 'A woman', 'Two dogs', 'A cat', 'A group of people', 'A little girl', 'An old man', 'A red bus',
  'Three zebras', 'A plate of food', 'A young boy', 'The kitchen', 'A giraffe', 'Several sheep', 'A skateboarder',
  'An airplane', 'A bowl of fruit', 'A baseball player', 'Some kids', 'A horse'];
const verbs = ['is sitting on', 'riding', 'standing next to', 'holding', 'looking at', 'walking down', 'playing with',
  'eating', 'flying over', 'parked near', "that's near", "who's holding", 'lying on', 'jumping over', 'covered in'];
const objects = ['a bench', 'the beach', 'a snowy hill', 'a busy street', 'a wooden table', 'a frisbee', 'the ocean',
  'a large pizza', 'a tennis racket', 'a fire hydrant', 'an umbrella', 'the grass', 'a stop sign', 'a laptop',
  'a kite', 'the water', 'a clock tower', 'two bananas', "the dog's toy", 'a cake with 3 candles'];
const tails = ['.', '', ' .', '!', '..', ' in the park.', ' at night', ' during the day.', ', smiling.', ' (blurry)',
  ' on a sunny day', ' in 2015.', '  ', ' ', '\r', ' near Café Zürich.', ' 🙂'];

function chunk() {
  switch (Math.floor(rand() * 12)) {
    case 0: return cp(0xc0, 0x24f);            // Latin-1 and Latin Extended
    case 1: return cp(0x391, 0x3c9);           // Greek
    case 2: return cp(0x410, 0x44f);           // Cyrillic
    case 3: return cp(0x4e00, 0x9fa5);         // CJK
    case 4: return cp(0x3041, 0x3096);         // Hiragana
    case 5: return cp(0xac00, 0xd7a3);         // Hangul syllables
    case 6: return cp(0x1f600, 0x1f64f);       // emoticons
    case 7: return pick(['\u200d', '\ufe0f', '\u0301', '\u00a0', '\u3000', '\t', '  ', '   ']);
    case 8: return pick(['!', '?', '...', '--', "'", '"', '(', ')', ',', ';', ':', '#', '&', '*', '/', '\\']);
    case 9: return String(Math.floor(rand() * 100000));
    case 10: return pick(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S"]);
    default: return cp(0x660, 0x669) + cp(0x966, 0x96f); // Arabic-Indic and Devanagari digits
  }
}

function caption() {
  let s = `${pick(subjects)} ${pick(verbs)} ${pick(objects)}${pick(tails)}`;
  if (rand() < 0.3) s = s.toLowerCase();
  if (rand() < 0.15) s = s.toUpperCase();
  const extra = rand() < 0.35 ? 1 + Math.floor(rand() * 4) : 0;
  for (let i = 0; i < extra; i++) {
    const at = Math.floor(rand() * (s.length + 1));
    // Never split a surrogate pair: the line must stay valid UTF-16/UTF-8.
    const safe = at > 0 && at < s.length && /[\udc00-\udfff]/.test(s[at]) ? at + 1 : at;
    s = s.slice(0, safe) + (rand() < 0.5 ? ' ' : '') + chunk() + s.slice(safe);
  }
  if (rand() < 0.05) s = ' ' + s;
  return s;
}

function punct() {
  const alphabet = ['"', ',', "'", ']', '[', ')', '(', '}', '{', '.', ' ', ':', ';'];
  let s = '';
  const n = 1 + Math.floor(rand() * 10);
  for (let i = 0; i < n; i++) s += pick(alphabet);
  return s;
}

function main() {
  const { encode } = require('gpt-3-encoder');
  const out = path.join(__dirname, '..', 'fixtures', 'bpe');
  fs.mkdirSync(out, { recursive: true });
  const lines = edge.slice();
  for (let i = 0; i < 4000; i++) lines.push(caption());
  for (let i = 0; i < 600; i++) lines.push(punct());
  for (const l of lines) if (l.includes('\n')) throw new Error('a fixture line contains \\n');
  fs.writeFileSync(path.join(out, 'corpus.txt'), lines.join('\n') + '\n');
  fs.writeFileSync(path.join(out, 'ids.jsonl'), lines.map(l => JSON.stringify(encode(l))).join('\n') + '\n');
  console.log(`gen_bpe_fixtures: ${lines.length} lines -> ${out}`);
}

module.exports = { seededRandom };
if (require.main === module) main();
