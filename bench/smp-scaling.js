'use strict';
// SMP scaling: bench/out/smp-bench.elf with 1, 2, 4 and 8 vCPUs, every vCPU
// doing 2000 forwarded reads of COM1's scratch register at the same time,
// under the C reference (--cpus N), QEMU (-smp N) and tsvmm (spin-park, in
// this process). Reports aggregate device exits per second (all vCPUs'
// exits / guest wall time, from the BSP's TSC) and the median per-exit
// latency across vCPUs. Each cell is the median of `--rounds` interleaved runs.
//
//   node bench/smp-scaling.js [--rounds N] [--no-qemu]
//
// Writes bench/out/smp-scaling.json.

const fs = require('node:fs');
const path = require('node:path');
const lib = require('./lib');

const CPU_COUNTS = [1, 2, 4, 8];

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

async function main(options = {}) {
  const rounds = options.rounds ?? 3;
  lib.ensureBuilt();
  const runners = ['c-ref'];
  if ((options.qemu ?? true) && lib.qemuVersion()) runners.push('qemu');
  runners.push('tsvmm-spin-park');
  const labels = { 'c-ref': 'C reference', qemu: 'QEMU', 'tsvmm-spin-park': 'tsvmm spin-park' };
  const raw = {};
  for (let round = 1; round <= rounds; round++) {
    for (const cpus of CPU_COUNTS) {
      for (const runner of runners) {
        lib.log(`smp-scaling: round ${round}/${rounds}: ${runner} with ${cpus} vCPUs`);
        const key = `${runner}/${cpus}`;
        (raw[key] ??= []).push(await runOnce(runner, cpus));
      }
    }
  }
  const info = lib.machineInfo();
  const results = {};
  for (const runner of runners) {
    results[runner] = {};
    for (const cpus of CPU_COUNTS) {
      const runs = raw[`${runner}/${cpus}`];
      const exitsPerSec = runs.map((r) => (r.cpus * r.iters) / (r.wall / (r.tscHz || info.cpuMHz * 1e6)));
      results[runner][cpus] = {
        exitsPerSec: lib.median(exitsPerSec),
        perExitCycles: lib.median(runs.map((r) => r.perExitMedian)),
        perExitUs: lib.median(runs.map((r) => (r.perExitMedian / (r.tscHz || info.cpuMHz * 1e6)) * 1e6)),
        online: Math.min(...runs.map((r) => r.cpus)),
        all: runs.map((r) => ({ cpus: r.cpus, wall: r.wall, perExitMedian: r.perExitMedian, perExitMax: r.perExitMax })),
        vcpuStats: runs[runs.length - 1].stats,
        device: runs[runs.length - 1].device,
      };
    }
  }

  const rows = [['vCPUs', ...runners.flatMap((r) => [`${labels[r]} exits/s`, `${labels[r]} us/exit`])]];
  for (const cpus of CPU_COUNTS) {
    rows.push([String(cpus), ...runners.flatMap((r) => {
      const c = results[r][cpus];
      const online = c.online === cpus ? '' : ` (${c.online} up)`;
      return [`${Math.round(c.exitsPerSec)}${online}`, c.perExitUs.toFixed(1)];
    })]);
  }
  const table = lib.formatTable(rows);
  const markdown = lib.markdownTable(rows);
  const targets = [];
  if (results.qemu) {
    const ts = results['tsvmm-spin-park'][8].exitsPerSec;
    const q = results.qemu[8].exitsPerSec;
    targets.push({ target: '8 vCPUs aggregate device exits/s >= QEMU', value: ts / q, limit: 1, met: ts >= q, shown: `${Math.round(ts)} vs QEMU ${Math.round(q)} (${(ts / q).toFixed(2)}x)` });
  }
  const summary = { date: new Date().toISOString(), machine: info, rounds, cpuCounts: CPU_COUNTS, runners, results, targets };
  fs.writeFileSync(path.join(lib.OUT, 'smp-scaling.json'), `${JSON.stringify(summary, null, 2)}\n`);
  const lines = [`SMP scaling: every vCPU does 2000 forwarded scratch-register reads at once; median of ${rounds} rounds`];
  if (!lib.qemuVersion()) lines.push('QEMU: not installed');
  lines.push(table, '');
  for (const t of targets) lines.push(`${t.met ? 'MET   ' : 'MISSED'} ${t.target}: ${t.shown}`);
  const ts8 = results['tsvmm-spin-park'][8];
  if (ts8.vcpuStats) {
    const sum = (k) => ts8.vcpuStats.reduce((s, v) => s + v[k], 0);
    lines.push(`tsvmm 8 vCPUs (last run): forwarded=${sum('forwarded')} spinHits=${sum('spinHits')} parks=${sum('parks')}; device thread served=${ts8.device.served} parks=${ts8.device.parks}`);
  }
  const text = lines.join('\n');
  process.stdout.write(`${text}\n`);
  return { summary, table, markdown, targets, text };
}

module.exports = { main };

lib.runIfMain(module, 'smp-scaling', main);
