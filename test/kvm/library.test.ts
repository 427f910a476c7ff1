// The package as a library, imported from a separate project directory:
// loading it parses no arguments, starts nothing and never exits the host
// process; a VM built from a plain config runs and reports a typed exit.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, guest } from '../support/tsvmm';

function project(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-user-'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'tsvmm'));
  fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"user","private":true}');
  return dir;
}

function run(dir: string, file: string, source: string, args: string[] = []): { status: number | null; stdout: string; stderr: string } {
  fs.writeFileSync(path.join(dir, file), source);
  const result = spawnSync(process.execPath, [file, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('require("tsvmm") has no side effects, even with tsvmm-looking arguments on the host\'s command line', () => {
  const dir = project();
  try {
    const result = run(dir, 'load.js', `
      const { threadId } = require('node:worker_threads');
      const before = process.getActiveResourcesInfo().length;
      const tsvmm = require('tsvmm');
      setImmediate(() => {
        console.log(JSON.stringify({ keys: Object.keys(tsvmm).sort(), resources: process.getActiveResourcesInfo().length - before, threadId }));
      });
    `, ['--kernel', '/nonexistent', '--cpus', '4']);
    assert.is(result.status, 0, result.stderr);
    assert.is(result.stderr, '');
    const report = JSON.parse(result.stdout);
    assert.equal(report.keys, ['DEFAULT_VM_CONFIG', 'Machine', 'TsvmmError', 'describeVmExit', 'resolveVmConfig']);
    assert.ok(report.resources <= 1, `no workers, timers or handles beyond the test's own setImmediate: ${report.resources}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('import("tsvmm") from an ES module works too, with the same API', () => {
  const dir = project();
  try {
    const result = run(dir, 'load.mjs', "import { Machine, resolveVmConfig } from 'tsvmm';\nconsole.log(typeof Machine, resolveVmConfig({}).cpus);\n");
    assert.is(result.status, 0, result.stderr);
    assert.is(result.stdout, 'function 1\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a VM from a plain config runs to a typed exit through the library; serial output arrives', () => {
  const dir = project();
  try {
    const result = run(dir, 'vm.js', `
      const fs = require('node:fs');
      const { Machine } = require('tsvmm');
      (async () => {
        let out = '';
        const machine = await Machine.create({ memoryMiB: 64 }, {
          kernel: new Uint8Array(fs.readFileSync(${JSON.stringify(guest('hello'))})),
          serialOutput: (bytes) => { out += Buffer.from(bytes).toString('latin1'); },
        });
        const exit = await machine.run();
        await machine.close();
        console.log(JSON.stringify({ exit, out, state: machine.state }));
      })();
    `);
    assert.is(result.status, 0, result.stderr);
    assert.equal(JSON.parse(result.stdout), { exit: { kind: 'reset', source: 'i8042' }, out: 'hello: long mode ok\n', state: 'closed' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the package declares its types for TypeScript users', () => {
  const types = path.join(ROOT, 'dist', 'index.d.ts');
  assert.ok(fs.existsSync(types), 'dist/index.d.ts is built');
  assert.match(fs.readFileSync(types, 'utf8'), /export \{ Machine \}/);
});

test.run();
