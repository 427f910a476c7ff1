// The CLI's contract with a user: bad input gets one line naming the problem
// and the fix, exit code 2 (1 when KVM itself is unusable), no stack trace.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { explain, guest, runTsvmm } from '../support/tsvmm';

function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.split('\n').filter((line) => line.length > 0);
  assert.is(lines.length, 1, `expected one line on stderr, got:\n${stderr}`);
  assert.match(lines[0], pattern);
  assert.not.match(stderr, /\n\s+at /, 'no stack trace');
}

const cases: Array<[string, string[], RegExp, number]> = [
  ['--cpus 0', ['--cpus', '0'], /^tsvmm: --cpus must be at least 1, got 0$/, 2],
  ['--cpus abc', ['--cpus', 'abc'], /^tsvmm: --cpus takes a whole number, got "abc"$/, 2],
  ['--cpus above the limit', ['--cpus', '5000'], /^tsvmm: --cpus 5000 is more than this host and tsvmm's MP table allow \(\d+\); use --cpus \d+ or fewer$/, 2],
  ['an unknown option', ['--frobnicate'], /^tsvmm: Unknown option '--frobnicate'; see --help$/, 2],
  ['a missing kernel', ['--kernel', '/nonexistent/vmlinux'], /^tsvmm: cannot read kernel \/nonexistent\/vmlinux: ENOENT \(no such file\)$/, 2],
  ['a kernel that is not one', ['--kernel', '/etc/hostname'], /^tsvmm: the kernel is neither an ELF \(vmlinux\) nor a bzImage/, 2],
  ['--mem too small for the kernel', ['--mem', '1'], /^tsvmm: .*(RAM|memory).*/i, 2],
  ['--mem 1000K', ['--mem', '1000K'], /^tsvmm: --mem 1000K is not a whole number of MiB; give a multiple of 1024K, or use M or G$/, 2],
  ['an unwritable --stats-file', ['--stats-file', '/nonexistent/stats.json'], /^tsvmm: cannot open --stats-file \/nonexistent\/stats\.json: ENOENT; give a path to a writable file$/, 2],
  ['a bad --serial', ['--serial', 'tcp:1234'], /^tsvmm: --serial takes stdio, null or file:PATH, got "tcp:1234"$/, 2],
  ['--boot-protocol pvh for a kernel without the note', ['--kernel', guest('hello'), '--boot-protocol', 'xen'], /^tsvmm: --boot-protocol takes linux or pvh, got "xen"$/, 2],
];

for (const [name, args, pattern, code] of cases) {
  test(`${name}: one clear line, exit ${code}`, async () => {
    const result = await runTsvmm(args);
    assert.is(result.code, code, explain(result));
    assertOneLine(result.stderr, pattern);
    assert.is(result.stdout, '', explain(result));
  });
}

test('without /dev/kvm: one line saying so and what to do, exit 1', async () => {
  const result = await runTsvmm([], { env: { TSVMM_KVM_DEVICE: '/nonexistent/kvm' } });
  assert.is(result.code, 1, explain(result));
  assertOneLine(result.stderr, /^tsvmm: \/nonexistent\/kvm does not exist: load the kvm module/);
});

test('--help prints usage and exits 0', async () => {
  const result = await runTsvmm(['--help']);
  assert.is(result.code, 0, explain(result));
  assert.match(result.stdout, /^usage: tsvmm \[options\]     \(from a checkout: node dist\/main\.js \[options\]\)\n/);
  assert.match(result.stdout, /--split-irqchip/);
});

test('--serial file:PATH writes the guest output to the file', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-')), 'serial.txt');
  const result = await runTsvmm(['--serial', `file:${file}`]);
  assert.is(result.code, 0, explain(result));
  assert.is(result.stdout, '');
  assert.is(fs.readFileSync(file, 'utf8'), 'hello: long mode ok\n');
});

test('--stats=json: one JSON object on stderr with the typed exit and durations; --stats-file writes it to a file instead', async () => {
  const result = await runTsvmm(['--stats=json', '--mem', '64M']);
  assert.is(result.code, 0, explain(result));
  assert.is(result.stdout, 'hello: long mode ok\n');
  const lines = result.stderr.split('\n').filter((line) => line.length > 0);
  assert.is(lines.length, 1, explain(result));
  const stats = JSON.parse(lines[0]);
  assert.equal(stats.exit, { kind: 'reset', source: 'i8042' });
  assert.is(stats.exitCode, 0);
  assert.ok(stats.durationsMs.startup > 0 && stats.durationsMs.guest >= 0 && stats.durationsMs.total >= stats.durationsMs.startup, explain(result));
  assert.is(stats.vcpus.length, 1);
  assert.ok(stats.vcpus[0].ioExits > 0, 'the demo guest writes COM1');
  assert.is(stats.vcpus[0].firstRunNs, undefined);

  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-stats-')), 'stats.json');
  const toFile = await runTsvmm(['--stats-file', file, '--cpus', '2']);
  assert.is(toFile.code, 0, explain(toFile));
  assert.is(toFile.stderr, '', explain(toFile));
  const written = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.equal(written.exit, { kind: 'reset', source: 'i8042' });
  assert.is(written.vcpus.length, 2);
});

test('plain --stats still prints the text lines', async () => {
  const result = await runTsvmm(['--stats']);
  assert.is(result.code, 0, explain(result));
  assert.match(result.stderr, /^vcpu0: kvmRuns=\d+ /);
  assert.match(result.stderr, /\nstart-up: first guest instruction [\d.]+ ms after process start\n$/);
});

test.run();
