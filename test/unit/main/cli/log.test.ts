// The CLI's log: "tsvmm: LEVEL: message" lines, only the levels asked for,
// to a --log-file; an unopenable file is one usage line.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UsageError } from '../../../../src/main/cli/args';
import { openLog } from '../../../../src/main/cli/log';

test('a --log-file gets the lines of the level asked for and more severe ones, nothing after close', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-log-')), 'tsvmm.log');
  const log = openLog('info', file);
  log.write('debug', 'not written');
  log.write('info', 'kernel loaded');
  log.write('warn', 'a BAR over another device');
  log.close();
  log.write('error', 'after close');
  assert.is(fs.readFileSync(file, 'utf8'), 'tsvmm: info: kernel loaded\ntsvmm: warn: a BAR over another device\n');
});

test('an unopenable --log-file is a UsageError naming it', () => {
  assert.throws(() => openLog('info', '/nonexistent/dir/tsvmm.log'),
    (error: unknown) => error instanceof UsageError && error.message === 'cannot open --log-file /nonexistent/dir/tsvmm.log: ENOENT; give a path to a writable file');
});

test.run();
