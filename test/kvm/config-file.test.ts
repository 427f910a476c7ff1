// --config FILE through the CLI: the file's VmConfig boots the guest, options
// on the command line override its fields, a bad file is one line naming the
// field and exit 2.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { explain, guest, runTsvmm } from '../support/tsvmm';

function withConfig(contents: string): { file: string; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-config-'));
  const file = path.join(dir, 'vm.json');
  fs.writeFileSync(file, contents);
  return { file, dir };
}

test('the config file picks the kernel, vCPUs and where COM1 goes', async () => {
  const { dir } = withConfig('');
  const out = path.join(dir, 'com1.txt');
  const { file } = withConfig(JSON.stringify({ kernel: guest('smp'), cpus: 3, serial: { kind: 'file', path: out } }));
  try {
    const result = await runTsvmm(['--config', file]);
    assert.is(result.code, 0, explain(result));
    assert.ok(fs.readFileSync(out, 'latin1').includes('smp: 3 of 3 CPUs online'), fs.readFileSync(out, 'latin1'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
});

test('options on the command line override the file\'s fields', async () => {
  const { file, dir } = withConfig(JSON.stringify({ kernel: guest('smp'), cpus: 4 }));
  try {
    const result = await runTsvmm(['--config', file, '--cpus', '2']);
    assert.is(result.code, 0, explain(result));
    assert.match(result.stdout, /smp: 2 of 2 CPUs online/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const bad: Array<[string, RegExp]> = [
  ['{"cpus": "two"}', /^tsvmm: config file \S+vm\.json: "cpus" must be a whole number from 1 to 65536, got "two"\n$/],
  ['{"memory": 512}', /^tsvmm: config file \S+vm\.json: unknown field "memory"; the fields are /],
  ['{"devices": [{"kind": "disk"}]}', /"devices\[0\]\.path" must be the image file's path/],
  ['{cpus: 2}', /^tsvmm: config file \S+vm\.json is not valid JSON: /],
  ['[1, 2]', /^tsvmm: config file \S+vm\.json must hold a JSON object such as \{"cpus": 2\}\n$/],
];

for (const [contents, expected] of bad) {
  test(`a bad config file is one line and exit 2: ${contents}`, async () => {
    const { file, dir } = withConfig(contents);
    try {
      const result = await runTsvmm(['--config', file]);
      assert.is(result.code, 2, explain(result));
      assert.match(result.stderr, expected);
      assert.is(result.stderr.split('\n').length, 2, `one line: ${result.stderr}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('a missing config file is one line and exit 2', async () => {
  const result = await runTsvmm(['--config', '/nonexistent/vm.json']);
  assert.is(result.code, 2, explain(result));
  assert.is(result.stderr, 'tsvmm: cannot read config file /nonexistent/vm.json: ENOENT (no such file)\n');
});

test.run();
