// A line for the person running the tests, now rather than after the file
// ends: scripts/run-tests.js keeps a test file's output until it is done,
// and hands the file its own stdout as fd TSVMM_TEST_NOTICE_FD for this.
// Run alone (node dist-test/...), a test writes it to stderr.

import * as fs from 'node:fs';

export function notice(text: string): void {
  const fd = Number(process.env.TSVMM_TEST_NOTICE_FD ?? 2);
  try {
    fs.writeSync(Number.isInteger(fd) ? fd : 2, `${text}\n`);
  } catch {
    process.stderr.write(`${text}\n`); // the fd is not open here
  }
}
