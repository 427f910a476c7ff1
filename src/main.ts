#!/usr/bin/env node
// tsvmm's command-line entry: `node dist/main.js --help`.
import { main } from './main/cli';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`tsvmm: internal error: ${error.stack ?? error}\n`);
    process.exit(1);
  },
);
