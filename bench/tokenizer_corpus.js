#!/usr/bin/env node
// Writes N caption-like lines (default 50000) to stdout for
// bench_tokenizer.sh: COCO-style sentences from templates, a few with
// accents, digits, emoji or CJK, from a seeded generator (same file on
// every run).
'use strict';
const n = Number(process.argv[2] || 50000);
const { seededRandom } = require('../tests/gen/gen_bpe_fixtures.js');
const { rand, pick } = seededRandom(0xc0ffee);
const adj = ['', 'small ', 'large ', 'red ', 'white ', 'old ', 'young ', 'wooden ', 'crowded ', 'snowy ', 'colorful '];
const subj = ['man', 'woman', 'dog', 'cat', 'group of people', 'girl', 'boy', 'bus', 'train', 'giraffe', 'plate of food',
  'skateboarder', 'surfer', 'baseball player', 'kitchen', 'bathroom', 'elephant', 'pizza', 'horse', 'motorcycle'];
const verb = ['sitting on', 'riding', 'standing next to', 'holding', 'looking at', 'walking down', 'playing with',
  'eating', 'parked in front of', 'flying over', 'lying on', 'jumping over', 'covered with', 'filled with'];
const place = ['a bench', 'the beach', 'a hill', 'a busy street', 'a table', 'a frisbee', 'the ocean', 'a field',
  'a stop sign', 'a laptop', 'a kite', 'the water', 'a tower', 'some bananas', "a child's toy", 'the snow'];
const tail = ['.', '', ' in the park.', ' at night.', ' on a sunny day.', ' near a café.', ' with 2 friends.',
  ' 😀', ' (東京).', '!', ' while it rains.'];
const out = [];
for (let i = 0; i < n; i++) {
  let s = `${pick(['A', 'The', 'Two', 'Some', 'An image of a'])} ${pick(adj)}${pick(subj)} ${pick(verb)} ` +
    `${pick(adj)}${pick(place)}${pick(tail)}`;
  if (rand() < 0.2) s = s.toLowerCase();
  out.push(s);
}
process.stdout.write(out.join('\n') + '\n');
