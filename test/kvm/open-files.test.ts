// A low open-file limit (ulimit -n) is one line and exit 1, said before any
// vCPU worker starts, instead of a Node abort or an EMFILE stack trace; a
// limit that is enough boots the guest. (Below ~16 Node itself cannot start,
// before any of tsvmm runs; that is not tested.)

import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAIN, guest } from '../support/tsvmm';

function underLimit(limit: number, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const command = `ulimit -n ${limit} && exec "${process.execPath}" "${MAIN}" ${args.map((a) => `'${a}'`).join(' ')}`;
  const result = spawnSync('sh', ['-c', command], { encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

for (const [limit, cpus] of [[20, 1], [30, 1], [60, 8]] as const) {
  test(`ulimit -n ${limit} with ${cpus} vCPU(s): one line naming the limit and the way out, exit 1`, () => {
    const result = underLimit(limit, ['--kernel', guest('smp'), '--cpus', String(cpus)]);
    assert.is(result.status, 1, result.stderr);
    assert.match(result.stderr, new RegExp(`^tsvmm: the open-file limit \\(ulimit -n\\) is ${limit}; a VM with ${cpus} vCPUs? needs at least (\\d+): raise it with ulimit -n \\1\\n$`));
    assert.not.match(result.stderr, /\n {4}at /, 'no stack trace');
  });
}

test('a limit that is enough boots the guest', () => {
  const result = underLimit(64, ['--kernel', guest('smp'), '--cpus', '2']);
  assert.is(result.status, 0, result.stderr);
  assert.match(result.stdout, /smp: 2 of 2 CPUs online/);
});

test.run();
