'use strict';
// SMP scaling: bench/out/smp-bench.elf with 1, 2, 4 and 8 vCPUs (--quick: 1
// and 8), every vCPU doing 2000 forwarded reads of COM1's scratch register at
// the same time, under the C reference (--cpus N), QEMU (-smp N) and tsvmm
// (each hand-off mode, in this process). Reports aggregate device exits per
// second (all vCPUs' exits / guest wall time, from the BSP's TSC) and the
// median per-exit latency across vCPUs: the median of `--rounds` interleaved
// runs with min-max.
//
// Writes bench/out/smp-scaling.json; with --write-results also the
// "## SMP scaling" section of bench/RESULTS.md.

const fs = require('node:fs');
const path = require('node:path');
const lib = require('./lib');

const CPU_COUNTS = [1, 2, 4, 8];
const QUICK_CPU_COUNTS = [1, 8];
const HEADING = '## SMP scaling';
/** Issue 11: 8 vCPUs doing forwarded reads at once, aggregate exits/s at least this share of QEMU's. */
const AGGREGATE_GOAL = 0.8;
const ACCEPTS = ['rounds', 'quick', 'qemu', 'handOff', 'writeResults'];
const DESCRIPTION = `SMP scaling: 1, 2, 4 and 8 vCPUs each doing 2000 forwarded device reads at once, under the C
reference, QEMU and tsvmm (each hand-off mode); aggregate exits per second and per-exit latency.`;

function runnerList(options) {
  const runners = ['c-ref'];
  if (options.qemu !== false && lib.qemuVersion()) runners.push('qemu');
  for (const mode of options.handOffs ?? lib.handOffModes().modes) runners.push(`tsvmm-${mode}`);
  return runners;
}

const cpuCounts = (options) => (options.quick ? QUICK_CPU_COUNTS : CPU_COUNTS);

function plan(options) {
  return options.rounds * cpuCounts(options).length * runnerList(options).length;
}

function label(runner) {
  return runner === 'c-ref' ? 'C reference' : runner === 'qemu' ? 'QEMU' : runner.replace(/^tsvmm-/, 'tsvmm ');
}

function parseSmp(text) {
  const m = /smp: cpus=(\d+) expected=(\d+) iters=(\d+) wall-cycles=(\d+) per-exit-median=(\d+) per-exit-max=(\d+)/.exec(text);
  if (!m) return undefined;
  const t = /bench: tsc-hz=(\d+)/.exec(text);
  return { cpus: +m[1], expected: +m[2], iters: +m[3], wall: +m[4], perExitMedian: +m[5], perExitMax: +m[6], tscHz: t ? +t[1] : NaN };
}

async function runOnce(runner, cpus) {
  const elf = lib.GUEST.smp;
  let r;
  if (runner === 'c-ref') r = await lib.runProcess(lib.REF_VMM, ['--cpus', String(cpus), elf], 300000);
  else if (runner === 'qemu') r = await lib.runProcess(lib.QEMU, lib.qemuArgs(elf, cpus), 300000);
  else r = await lib.runTsvmm(elf, { cpus, handOff: runner.replace(/^tsvmm-/, ''), timeoutMs: 300000 });
  const parsed = parseSmp(r.out);
  if (!parsed) throw new Error(`${runner} --cpus ${cpus}: no smp line (exit ${r.code ?? r.signal} ${r.reason ?? ''})\n${r.out.slice(-400)}`);
  if (parsed.cpus !== cpus) lib.log(`smp-scaling: ${runner} --cpus ${cpus}: only ${parsed.cpus} CPUs came online`);
  return { ...parsed, stats: r.stats, device: r.device };
}

async function main(options, progress = new lib.Progress(plan(options))) {
  const { rounds } = options;
  lib.ensureBuilt();
  const runners = runnerList(options);
  const counts = cpuCounts(options);
  const defaultMode = lib.judgedHandOff(options);
  const main = `tsvmm-${defaultMode}`;
  const raw = {};
  const failures = [];
  for (let round = 1; round <= rounds; round++) {
    for (const cpus of counts) {
      const order = round % 2 ? runners : [...runners].reverse();
      for (const runner of order) {
        progress.step(`smp-scaling: round ${round}/${rounds}: ${label(runner)} with ${cpus} vCPUs`);
        const key = `${runner}/${cpus}`;
        raw[key] ??= [];
        try {
          raw[key].push(await runOnce(runner, cpus));
        } catch (error) {
          // A failed run costs only that cell's round; the reference's too, since nothing here is a ratio to it.
          failures.push(`${label(runner)} with ${cpus} vCPUs, round ${round}: ${error.message.split('\n')[0]}`);
          lib.log(`smp-scaling: ${failures.at(-1)}; going on without it`);
        }
      }
    }
  }
  const info = lib.machineInfo();
  const results = {};
  for (const runner of runners) {
    results[runner] = {};
    for (const cpus of counts) {
      const runs = raw[`${runner}/${cpus}`];
      const hz = (r) => r.tscHz || info.cpuMHz * 1e6;
      results[runner][cpus] = {
        exitsPerSec: lib.spread(runs.map((r) => (r.cpus * r.iters) / (r.wall / hz(r)))),
        perExitUs: lib.spread(runs.map((r) => (r.perExitMedian / hz(r)) * 1e6)),
        online: runs.length ? Math.min(...runs.map((r) => r.cpus)) : cpus,
        all: runs.map((r) => ({ cpus: r.cpus, wall: r.wall, perExitMedian: r.perExitMedian, perExitMax: r.perExitMax })),
        vcpuStats: runs.at(-1)?.stats,
        device: runs.at(-1)?.device,
      };
    }
  }

  const int = (x) => (Number.isFinite(x) ? String(Math.round(x)) : '-');
  const cellText = (s, f) => (rounds > 1 ? `${f(s.median)} (${f(s.min)}-${f(s.max)})` : f(s.median));
  const rows = [['vCPUs', ...runners.flatMap((r) => [`${label(r)} exits/s`, `${label(r)} us/exit`])]];
  for (const cpus of counts) {
    rows.push([String(cpus), ...runners.flatMap((r) => {
      const c = results[r][cpus];
      const online = c.online === cpus ? '' : ` (${c.online} up)`;
      return [`${cellText(c.exitsPerSec, int)}${online}`, cellText(c.perExitUs, (x) => (Number.isFinite(x) ? x.toFixed(1) : '-'))];
    })]);
  }
  const table = lib.formatTable(rows);
  const markdown = lib.markdownTable(rows);
  const top = counts.at(-1);
  const goals = [];
  const target = `${top} vCPUs doing forwarded reads at once: tsvmm (${defaultMode}) aggregate exits/s >= ${AGGREGATE_GOAL}x QEMU's`;
  if (results.qemu && results[main]) {
    const ts = results[main][top].exitsPerSec;
    const q = results.qemu[top].exitsPerSec;
    const others = runners.filter((r) => r.startsWith('tsvmm-') && r !== main)
      .map((r) => `${r.replace(/^tsvmm-/, '')} ${lib.ratioText(results[r][top].exitsPerSec.median / q.median)}`).join(', ');
    goals.push(lib.goal(target, ts.median / q.median, AGGREGATE_GOAL, {
      atMost: false,
      spreadText: `${int(ts.median)} vs QEMU ${int(q.median)} exits/s${rounds > 1 ? `; rounds: tsvmm ${int(ts.min)}-${int(ts.max)}, QEMU ${int(q.min)}-${int(q.max)}` : ''}`,
      detail: others ? `other modes: ${others}` : '',
    }));
  } else {
    goals.push({ target, met: undefined, shown: 'QEMU not run' });
  }
  const summary = { date: new Date().toISOString(), machine: info, rounds, cpuCounts: counts, runners, results, goals, failures };
  fs.writeFileSync(path.join(lib.OUT, 'smp-scaling.json'), `${JSON.stringify(summary, null, 2)}\n`);
  const counterLines = [];
  const tsTop = results[main]?.[top];
  if (tsTop?.vcpuStats) {
    const sum = (k) => tsTop.vcpuStats.reduce((a, v) => a + v[k], 0);
    counterLines.push(`tsvmm ${defaultMode}, ${top} vCPUs (last run): forwarded=${sum('forwarded')} spinHits=${sum('spinHits')} parks=${sum('parks')}; device thread served=${tsTop.device.served} parks=${tsTop.device.parks}`);
  }
  const intro = `Every vCPU does 2000 forwarded reads of COM1's scratch register at the same time; aggregate exits per second
(all vCPUs' exits over the guest's wall time, BSP TSC) and the median per-exit latency across vCPUs, median (min-max) of
${rounds} interleaved round${rounds > 1 ? 's' : ''}. The host has ${info.nproc} cores, so more than ${info.nproc} vCPUs share them.`;
  const failed = failures.map((f) => `FAILED: ${f}`);
  const section = `${HEADING}\n\n${intro}\n\n${failed.map((f) => `- **${f}**\n`).join('')}${failed.length ? '\n' : ''}${markdown}\n\n${lib.goalLines(goals)}\n${counterLines.map((l) => `\n- ${l}`).join('')}\n`;
  const lines = [`SMP scaling: ${intro.replace(/\n/g, ' ')}`];
  if (!lib.qemuVersion()) lines.push('QEMU: not installed');
  lines.push(table, '', ...failed, ...lib.goalText(goals), ...counterLines);
  const text = lines.join('\n');
  process.stdout.write(`${text}\n`);
  return { summary, table, markdown, section, goals, text, warnings: failed };
}

module.exports = { main, plan, ACCEPTS, HEADING };

lib.runIfMain(module, {
  script: 'smp-scaling.js',
  description: DESCRIPTION,
  accepts: ACCEPTS,
  plan,
  main,
  resultsHeading: HEADING,
});
