// The libc and kernel constants of libc-abi.ts against <sys/file.h> and
// <linux/falloc.h>, compiled here with gcc.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FALLOC_FL, LOCK } from '../../../src/shared/libc-abi';

test('flock and fallocate constants match the C headers', () => {
  if (spawnSync('sh', ['-c', 'command -v gcc'], { stdio: 'ignore' }).status !== 0) {
    console.log('not checked: needs gcc');
    return;
  }
  const expected = new Map<string, number>([
    ...Object.entries(LOCK).map(([name, value]) => [`LOCK_${name}`, value] as [string, number]),
    ...Object.entries(FALLOC_FL).map(([name, value]) => [`FALLOC_FL_${name}`, value] as [string, number]),
  ]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-libc-'));
  const lines = [...expected.keys()].map((name) => `  printf("${name} %d\\n", ${name});`);
  fs.writeFileSync(path.join(dir, 'abi.c'), `#include <stdio.h>\n#include <sys/file.h>\n#include <linux/falloc.h>\nint main(void) {\n${lines.join('\n')}\n  return 0;\n}\n`);
  const compiled = spawnSync('gcc', ['-o', path.join(dir, 'abi'), path.join(dir, 'abi.c')], { encoding: 'utf8' });
  assert.is(compiled.status, 0, compiled.stderr);
  const actual = new Map(spawnSync(path.join(dir, 'abi'), { encoding: 'utf8' }).stdout.trim().split('\n').map((line) => {
    const [name, value] = line.split(' ');
    return [name, Number(value)] as [string, number];
  }));
  assert.equal(actual, expected);
  fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
