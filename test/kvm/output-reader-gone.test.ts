// When the reader of tsvmm's output goes away (`tsvmm ... | head -1` with a
// guest that prints for ever), the VM ends at once with one line and exit 1,
// instead of spinning on the write with signals unanswered (issue 12 item 4).

import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAIN, guest } from '../support/tsvmm';

test('| head -1: tsvmm ends on EPIPE with one line and exit 1, within seconds', () => {
  const started = Date.now();
  const script = `"${process.execPath}" "${MAIN}" --kernel "${guest('chatty')}" | head -1; echo "tsvmm=\${PIPESTATUS[0]}" >&2`;
  const result = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 60_000 });
  const seconds = (Date.now() - started) / 1000;
  assert.is(result.error, undefined, 'bash finished before the 60 s limit (a hung tsvmm would keep the pipeline alive)');
  assert.is(result.stdout, 'chatty: line 0\n');
  assert.match(result.stderr, /^tsvmm: stopped: cannot write guest output to stdout: EPIPE \(its reader went away\)\ntsvmm=1\n$/);
  assert.ok(seconds < 20, `ended after ${seconds.toFixed(1)} s`);
});

test.run();
