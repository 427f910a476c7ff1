// The bench harness as a user meets it (issue 13 item 8): strict options, one
// line and exit 2 for a typo before anything is built or run, --help, the
// hand-off modes read from tsvmm's --help, and RESULTS.md sections replaced
// in place. Nothing here starts a VM.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from '../support/tsvmm';

const bench = require(path.join(ROOT, 'bench', 'lib.js'));

const ALL = ['rounds', 'quick', 'qemu', 'load', 'handOff', 'writeResults'];

function runScript(script: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bench', script), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('options: defaults, --quick makes one round unless --rounds says otherwise', () => {
  const none = bench.parseOptions([], ALL);
  assert.equal([none.rounds, none.quick, none.qemu, none.load, none.writeResults, none.handOffs], [3, false, true, true, false, undefined]);
  assert.is(bench.parseOptions(['--quick'], ALL).rounds, 1);
  assert.is(bench.parseOptions(['--quick', '--rounds=2'], ALL).rounds, 2);
  assert.is(bench.parseOptions(['--rounds', '5'], ALL).rounds, 5);
  const all = bench.parseOptions(['--no-qemu', '--no-load', '--write-results', '--hand-off', 'spin-park,native'], ALL);
  assert.equal([all.qemu, all.load, all.writeResults, all.handOffs], [false, false, true, ['spin-park', 'native']]);
});

test('options: typos, bad values and options a script does not take are usage errors naming them', () => {
  const refused = (args: string[], accepts: string[], message: RegExp) => {
    assert.throws(() => bench.parseOptions(args, accepts), (error: Error) => error instanceof bench.UsageError && message.test(error.message));
  };
  refused(['--quik'], ALL, /unknown option "--quik"/);
  refused(['--rounds', '0'], ALL, /--rounds wants a whole number/);
  refused(['--rounds', 'three'], ALL, /not "three"/);
  refused(['--rounds'], ALL, /--rounds needs a value/);
  refused(['--rounds', '--quick'], ALL, /--rounds needs a value/);
  refused(['--quick=yes'], ALL, /unknown option "--quick=yes"/);
  refused(['--no-load'], ['rounds', 'quick', 'qemu', 'writeResults'], /unknown option "--no-load"/);
  refused(['--hand-off', 'spin-park'], ['rounds'], /unknown option "--hand-off"/);
});

test('the hand-off modes come from tsvmm --help, a new mode and wrapped lines included', () => {
  const help = [
    '  --split-irqchip       LAPICs in KVM',
    '  --hand-off MODE       exit hand-off: spin-park (default), park, post-message,',
    '                        comlink, or native',
    '  --spin-limit N        spins before a vCPU parks',
  ].join('\n');
  assert.equal(bench.handOffModesFromHelp(help), { modes: ['spin-park', 'park', 'post-message', 'comlink', 'native'], defaultMode: 'spin-park' });
  assert.equal(bench.handOffModesFromHelp('  --hand-off MODE   one of: native (default), park\n').defaultMode, 'native');
  assert.throws(() => bench.handOffModesFromHelp('  --cpus N\n'), /lists no --hand-off option/);
});

test('a goal says met, or missed by how much beside its spread', () => {
  const met = bench.goal('port read <= 1.10x', 1.04, 1.10, { spreadText: 'per round 1.01-1.08' });
  assert.equal([met.met, met.shown], [true, '1.04x (per round 1.01-1.08)']);
  const over = bench.goal('port read <= 1.10x', 1.21, 1.10, { spreadText: 'per round 1.15-1.30' });
  assert.equal([over.met, over.shown], [false, '1.21x (per round 1.15-1.30), missed: 10% over the 1.10x limit']);
  const short = bench.goal('8 vCPUs >= 0.8x QEMU', 0.6, 0.8, { atMost: false });
  assert.equal([short.met, short.shown], [false, '0.60x, missed: 25% short of the 0.80x limit']);
  assert.is(bench.goal('start-up', 42.5, 30, { unit: 'ms' }).shown, '42.5 ms, missed: 12.5 ms over the 30 ms limit');
  assert.is(bench.goal('x', NaN, 1).met, undefined);
  assert.equal(bench.goalText([met, over]), [`MET    port read <= 1.10x: ${met.shown}`, `MISSED port read <= 1.10x: ${over.shown}`]);
});

test('--write-results replaces a section of RESULTS.md in place, or appends it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-bench-test-'));
  try {
    const file = path.join(dir, 'RESULTS.md');
    fs.writeFileSync(file, '# results\n\n## Exit latency\n\nold exits\n\n## SMP scaling\n\nold smp\n\n## virtio-blk\n\nold blk\n');
    bench.writeResultsSection('## SMP scaling', '## SMP scaling\n\nnew smp\n', file);
    bench.writeResultsSection('## virtio-blk', '## virtio-blk\n\nnew blk\n', file);
    bench.writeResultsSection('## Start-up and idle', '## Start-up and idle\n\nnew start-up\n', file);
    assert.is(fs.readFileSync(file, 'utf8'),
      '# results\n\n## Exit latency\n\nold exits\n\n## SMP scaling\n\nnew smp\n\n## virtio-blk\n\nnew blk\n\n## Start-up and idle\n\nnew start-up\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('every bench script refuses a typo with one line and exit 2, and --help lists its options', () => {
  for (const script of ['run-all.js', 'exit-latency.js', 'smp-scaling.js', 'startup.js', 'virtio-blk.js', 'snapshot.js', 'firmware-boot.js', 'handoff-micro.js']) {
    const typo = runScript(script, ['--rouns', '2']);
    assert.is(typo.status, 2, `${script} --rouns`);
    const name = script.replace(/\.js$/, '');
    assert.equal(typo.stderr.trimEnd().split('\n'), [`${name}: unknown option "--rouns" (try --help)`], script);
    assert.is(typo.stdout, '', script);
    const help = runScript(script, ['--help']);
    assert.is(help.status, 0, `${script} --help`);
    assert.match(help.stdout, new RegExp(`^usage: node bench/${script.replace('.', '\\.')}`), script);
    assert.match(help.stdout, /--help/, script);
    if (script !== 'handoff-micro.js') assert.match(help.stdout, /--rounds N/, script);
  }
  assert.match(runScript('run-all.js', ['--help']).stdout, /--write-results[\s\S]*--quick|--quick[\s\S]*--write-results/);
});

test.run();
