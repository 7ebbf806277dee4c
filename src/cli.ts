#!/usr/bin/env node
// The bin entry of `tresor` (package.json "bin": dist/src/cli.js); the commands are in cli/.

import { main } from './cli/index.js';

void main(process.argv);
