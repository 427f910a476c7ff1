// npm run fetch-kernel: the Debian kernel the tests use, in .cache/, with
// the vmlinux's path as its one line of stdout (what the README's recipe
// takes). Downloads once if nothing is cached (saying so on stderr first);
// "not checked" where apt-get cannot fetch it.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { debianKernel } from '../../fixtures/debian-kernel';
import { ROOT } from '../../support/tsvmm';

test('prints the cached vmlinux, an ELF file, the one the tests boot', async () => {
  const kernel = await debianKernel();
  if ('skip' in kernel) {
    console.log(`not checked: ${kernel.skip}`);
    return;
  }
  const result = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'fetch-kernel.js')], { cwd: ROOT, encoding: 'utf8' });
  assert.is(result.status, 0, result.stderr);
  assert.is(result.stdout, `${kernel.vmlinux}\n`);
  assert.ok(kernel.vmlinux.startsWith(path.join(ROOT, '.cache', 'debian-kernel') + path.sep));
  assert.equal([...fs.readFileSync(kernel.vmlinux).subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
  assert.is(result.stderr, `fetch-kernel: Debian ${kernel.version}; the bzImage is ${kernel.vmlinuz}\n`, 'a cached kernel downloads nothing');
});

test.run();
