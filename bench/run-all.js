'use strict';
// `npm run bench`: checks its options, builds (scripts/build.js, so that a
// typo fails at once rather than after the build), then runs exit latency
// (idle and under one busy process), SMP
// scaling, start-up, virtio-blk, snapshot/restore and SeaBIOS boot, in that order, in one process (nothing
// else of ours runs meanwhile), with one [k/N] progress count over all of
// them. Writes the results page to bench/out/RESULTS.md (untracked); only
// with --write-results does it rewrite bench/RESULTS.md and
// bench/exit-latency.svg.

const fs = require('node:fs');
const path = require('node:path');
const lib = require('./lib');
const exitLatency = require('./exit-latency');
const smpScaling = require('./smp-scaling');
const startup = require('./startup');
const virtioBlk = require('./virtio-blk');
const snapshot = require('./snapshot');
const firmwareBoot = require('./firmware-boot');

const BENCHES = [exitLatency, smpScaling, startup, virtioBlk, snapshot, firmwareBoot];
const ACCEPTS = ['rounds', 'quick', 'qemu', 'load', 'handOff', 'writeResults'];
const DESCRIPTION = `Every benchmark of bench/ in one run: exit latency (idle and under one competing busy process),
SMP scaling, start-up and idle cost, virtio-blk, snapshot and restore, firmware boot; each against the C reference,
QEMU or \`node -e 0\` in the same run.
Prints the tables and writes bench/out/RESULTS.md; --write-results rewrites bench/RESULTS.md and
bench/exit-latency.svg instead (for the lead's idle-machine run). From npm: npm run bench -- [options].`;

/** The options a bench takes, out of run-all's. */
function optionsFor(bench, options) {
  const own = { ...options };
  if (!bench.ACCEPTS.includes('handOff')) delete own.handOffs;
  return own;
}

function plan(options) {
  return BENCHES.reduce((n, bench) => n + bench.plan(optionsFor(bench, options)), 0);
}

async function main(options, progress) {
  lib.ensureBuilt();
  const before = lib.machineInfo();
  const started = Date.now();
  const results = [];
  for (const bench of BENCHES) {
    results.push(await bench.main(optionsFor(bench, options), progress));
    process.stdout.write('\n');
  }
  const info = lib.machineInfo();
  const minutes = ((Date.now() - started) / 60000).toFixed(1);
  const allGoals = results.flatMap((r) => r.goals);
  const met = allGoals.filter((g) => g.met).length;
  const warnings = results.flatMap((r) => r.warnings ?? []);
  const how = `node bench/run-all.js${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  const md = `# tsvmm benchmark results

Written by \`npm run bench\` (\`${how}\`) on ${new Date().toISOString().replace('T', ' ').replace(/\..*/, '')} UTC; the run took ${minutes} min${options.quick ? '. **A --quick run: one round of short runs, not figures to quote.**' : '.'}
How to read and reproduce these: [README.md](README.md).

## Machine

| | |
| --- | --- |
| kernel (\`uname -r\`) | ${info.kernel} |
| CPU | ${info.cpuModel}, ${info.cpuMHz} MHz |
| nproc | ${info.nproc} |
| node | ${info.node} |
| KVM flavour | ${info.kvmPvm ? 'PVM (/sys/module/kvm_pvm exists): the host is itself a VM, every exit is expensive' : 'regular (no /sys/module/kvm_pvm)'} |
| QEMU | ${info.qemu} |
| tsvmm hand-off modes | ${(options.handOffs ?? lib.handOffModes().modes).join(', ')} (default ${lib.handOffModes().defaultMode}) |
| load average before / after | ${before.loadAverage.join(' ')} / ${info.loadAverage.join(' ')} |

Every ratio below is against a reference measured in the same run; this host is noisy, so each figure carries its
spread over rounds.

## Goals

${met} of ${allGoals.length} met (issue 11: exit path, SMP, start-up, idle; issue 8: virtio-blk; issue 10: restore).
${warnings.length ? `\n${warnings.map((w) => `- **${w}**`).join('\n')}\n` : ''}
${lib.goalLines(allGoals)}

${results.map((r) => r.section.replace(/\n*$/, '\n')).join('\n')}`;
  const target = options.writeResults ? lib.RESULTS : path.join(lib.OUT, 'RESULTS.md');
  fs.writeFileSync(target, md);
  process.stdout.write(`${lib.goalText(allGoals).join('\n')}\n`);
  if (warnings.length) process.stdout.write(`${warnings.join('\n')}\n`);
  process.stdout.write(`\nbench: ${met} of ${allGoals.length} goals met; the run took ${minutes} min; wrote ${path.relative(lib.ROOT, target)}`
    + `${options.writeResults ? ', bench/exit-latency.svg' : ', bench/out/exit-latency.svg'} and bench/out/*.json`
    + `${options.writeResults ? '' : ' (tracked files untouched: --write-results rewrites bench/RESULTS.md)'}\n`);
}

lib.runIfMain(module, { script: 'run-all.js', description: DESCRIPTION, accepts: ACCEPTS, plan, main, prepare: lib.buildProject });
