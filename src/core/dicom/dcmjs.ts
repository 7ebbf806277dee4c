// The one dcmjs of the process. dcmjs-dimse, dcmjs-codecs and dcmjs-imaging require() its
// CommonJS build, and package.json's "overrides" gives them the root's version (one copy
// on disk instead of three). An ES import of 'dcmjs' would load its separate ES build: a
// second copy in memory, ~7 MB resident (its code and dictionaries; issue 13 item 4, the
// idle footprint). So our code takes the CommonJS one too, from here. Silenced once, here
// (dcmjs-quiet.ts: its log messages carry tag values).

import { createRequire } from 'node:module';
import type Dcmjs from 'dcmjs';
import { silenceDcmjs } from './dcmjs-quiet.js';

const dcmjs = createRequire(import.meta.url)('dcmjs') as typeof Dcmjs;
silenceDcmjs(dcmjs);

export default dcmjs;
