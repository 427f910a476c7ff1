'use strict';
// Snapshot and restore (issue 10): for a 256 MiB and a 4 GiB guest
// (guests/counter, which touches little of its memory):
//
// 1. Pause latency: Machine.pause() on the running guest, in this process
//    through the library, until every vCPU is out of KVM_RUN.
// 2. Snapshot: Machine.snapshot() on the paused guest (time), and the
//    memory file's length and the bytes it really allocates (st_blocks).
// 3. Restore: `node dist/main.js --restore DIR --stats=json` until the
//    restored vCPU's first KVM_RUN (durationsMs.startup: process start to
//    first guest instruction, from the CLI's own --stats), next to a boot of
//    the same guest from its ELF and `node -e 0` spawned and run to its end,
//    in the same round.
//
// The goal (issue 10): a restore of the 4 GiB guest running within 50 ms of
// process start beyond what `node -e 0` takes; a snapshot of the idle 4 GiB
// guest writes only the pages it touched.
//
// Writes bench/out/snapshot.json; with --write-results also the
// "## Snapshot and restore" section of bench/RESULTS.md.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const lib = require('./lib');

const HEADING = '## Snapshot and restore';
const SIZES_MIB = [256, 4096];
const RESTORE_OVER_NODE_GOAL_MS = 50;
const ACCEPTS = ['rounds', 'quick', 'writeResults'];
const DESCRIPTION = 'Snapshot and restore of a 256 MiB and a 4 GiB guest: pause latency, snapshot time and size, restore to the first guest instruction next to a boot and `node -e 0`.';
const COUNTER = path.join(lib.ROOT, 'guests', 'out', 'counter.elf');
const MAIN = path.join(lib.ROOT, 'dist', 'main.js');

/**
 * Firecracker's own published figures, for scale (its CI's targets in
 * tests/integration_tests/performance/test_snapshot_perf.py, LOAD_LATENCY_BASELINES and
 * CREATE_LATENCY_BASELINES, as of 2022): they time the API call inside an already running
 * Firecracker process, so they compare with tsvmm's restore beyond process start-up, not with
 * its spawn-to-first-instruction time.
 */
const FIRECRACKER_REFERENCE = 'For scale, Firecracker\'s CI targets (x86_64, 2 vCPUs, 256 and 512 MiB; tests/integration_tests/performance/test_snapshot_perf.py, 2022): '
  + '9 ms for the load-snapshot API call in a running Firecracker process, 180 and 280 ms for a full snapshot. Not measured here.';

const msSince = (start) => Number(process.hrtime.bigint() - start) / 1e6;

/** Boots the counter guest in this process, pauses and snapshots it into `dir`. */
async function snapshotOnce(memoryMiB, dir) {
  const { Machine } = require(path.join(lib.ROOT, 'dist', 'index.js'));
  let lines = 0;
  const machine = await Machine.create({ kernel: COUNTER, memoryMiB }, {
    kernel: fs.readFileSync(COUNTER),
    serialOutput: (bytes) => { for (const byte of bytes) if (byte === 10) lines++; },
  });
  try {
    const running = machine.run();
    const deadline = Date.now() + 60_000;
    while (lines < 20 && Date.now() < deadline) await lib.sleep(10);
    if (lines < 20) throw new Error(`the counter guest printed ${lines} lines in 60 s`);
    let start = process.hrtime.bigint();
    await machine.pause();
    const pauseMs = msSince(start);
    start = process.hrtime.bigint();
    await machine.snapshot(dir);
    const snapshotMs = msSince(start);
    machine.end({ kind: 'stopped', cause: { by: 'request' } });
    await running;
    const stat = fs.statSync(path.join(dir, 'memory.bin'));
    return { pauseMs, snapshotMs, fileBytes: stat.size, allocatedBytes: stat.blocks * 512 };
  } finally {
    await machine.close();
  }
}

/** Runs tsvmm with --stats=json until its first guest instruction (then SIGTERM); the CLI's startup figure in ms. */
function firstInstructionMs(args) {
  return new Promise((resolve, reject) => {
    const child = lib.track(spawn(process.execPath, [MAIN, ...args, '--serial', 'null', '--stats=json'], { stdio: ['ignore', 'ignore', 'pipe'] }));
    let stderr = '';
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    // The guest prints from its first instructions on; a second is plenty to be past the first KVM_RUN.
    const stop = setTimeout(() => child.kill('SIGTERM'), 1500);
    child.on('close', () => {
      clearTimeout(stop);
      const json = stderr.split('\n').filter((line) => line.startsWith('{')).pop();
      const startup = json ? JSON.parse(json).durationsMs?.startup : undefined;
      if (typeof startup === 'number') resolve(startup);
      else reject(new Error(`tsvmm ${args.join(' ')} gave no startup figure: ${stderr.trim().slice(-300)}`));
    });
  });
}

function nodeBaselineMs() {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' }).on('close', () => resolve(msSince(start)));
  });
}

async function main(options, progress) {
  lib.ensureBuilt();
  if (!fs.existsSync(COUNTER)) throw new lib.UsageError(`${COUNTER} is missing: run npm run build`);
  const results = [];
  for (const memoryMiB of SIZES_MIB) {
    const rounds = [];
    for (let round = 0; round < options.rounds; round++) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-bench-snapshot-'));
      try {
        const snap = await snapshotOnce(memoryMiB, dir);
        const node = await nodeBaselineMs();
        const restore = await firstInstructionMs(['--restore', dir]);
        const boot = await firstInstructionMs(['--kernel', COUNTER, '--mem', String(memoryMiB)]);
        rounds.push({ ...snap, nodeMs: node, restoreMs: restore, bootMs: boot });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      progress.step(`${memoryMiB} MiB, round ${round + 1} of ${options.rounds}`);
    }
    const pick = (key) => lib.spread(rounds.map((r) => r[key]));
    results.push({
      memoryMiB,
      pauseMs: pick('pauseMs'), snapshotMs: pick('snapshotMs'), fileBytes: rounds[0].fileBytes, allocatedBytes: pick('allocatedBytes'),
      restoreMs: pick('restoreMs'), bootMs: pick('bootMs'), nodeMs: pick('nodeMs'),
      restoreOverNodeMs: lib.spread(rounds.map((r) => r.restoreMs - r.nodeMs)),
      rounds,
    });
  }
  const range = (s, digits = 1) => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})`;
  const mib = (bytes) => (bytes / (1024 * 1024)).toFixed(bytes < 1024 * 1024 ? 2 : 0);
  const rows = [
    ['guest RAM', 'pause ms', 'snapshot ms', 'memory.bin MiB (allocated)', 'restore: first instruction ms', 'boot: first instruction ms', 'node -e 0 ms'],
    ...results.map((r) => [
      `${r.memoryMiB} MiB`, range(r.pauseMs, 2), range(r.snapshotMs), `${mib(r.fileBytes)} (${mib(r.allocatedBytes.median)})`,
      range(r.restoreMs), range(r.bootMs), range(r.nodeMs),
    ]),
  ];
  const big = results.find((r) => r.memoryMiB === 4096);
  const goals = big ? [
    lib.goal(`restore of a 4 GiB guest to its first instruction within ${RESTORE_OVER_NODE_GOAL_MS} ms beyond \`node -e 0\``, big.restoreOverNodeMs.median,
      RESTORE_OVER_NODE_GOAL_MS, { unit: 'ms', spreadText: `${big.restoreOverNodeMs.min.toFixed(1)}-${big.restoreOverNodeMs.max.toFixed(1)} over ${big.rounds.length} rounds` }),
  ] : [];
  for (const line of [...lib.formatTable(rows).split('\n'), ...lib.goalText(goals)]) lib.log(line);
  fs.mkdirSync(lib.OUT, { recursive: true });
  fs.writeFileSync(path.join(lib.OUT, 'snapshot.json'), `${JSON.stringify({ machine: lib.machineInfo(), results }, null, 2)}\n`);
  const section = `${HEADING}\n\n${DESCRIPTION} Medians (min-max) over ${options.rounds} rounds; \`node bench/snapshot.js\`.\n\n${lib.markdownTable(rows)}\n\n`
    + `${FIRECRACKER_REFERENCE}\n\n${lib.goalLines(goals)}\n`;
  return { section, goals };
}

const plan = (options) => SIZES_MIB.length * options.rounds;

module.exports = { main, plan, ACCEPTS, HEADING };

lib.runIfMain(module, {
  script: 'snapshot.js',
  description: DESCRIPTION,
  accepts: ACCEPTS,
  plan,
  main,
  resultsHeading: HEADING,
});
