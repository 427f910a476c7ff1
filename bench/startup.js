'use strict';
// Start-up time and idle cost.
//
// 1. Start-up: spawns each VMM on bench/out/idle.elf, whose guest_main prints
//    "idle: boot" first thing, and guests/out/hello.elf, and measures from
//    spawn() to the first stdout byte and to exit. A guest cannot see host
//    time, so "first serial byte" stands in for "first guest instruction";
//    it over-counts by the runtime's start-up (.bss clear, 6 COM1 writes).
//    hello.elf is the metric: idle.elf links the AP trampoline's 256 KiB of
//    AP stacks, and clearing that .bss costs ~120 ms on this PVM host in
//    every VMM. For tsvmm it also times the in-process steps
//    (Machine.create, run() to the first byte) and a bare `node` that loads
//    dist/main/vmm/machine.js, which together split the total.
// 2. Idle: with 1 and 8 vCPUs, after "idle: ready" (all APs up and halted,
//    the BSP in sti; hlt), reads VmRSS from /proc/<pid>/status and the CPU
//    time (utime + stime of every thread, /proc/<pid>/stat) over 2 s, then
//    sends SIGTERM and checks that the process exits cleanly and how fast.
//
//   node bench/startup.js [--rounds N] [--no-qemu]
//
// Writes bench/out/startup.json.

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const lib = require('./lib');

const IDLE_SECONDS = 2;
const CLK_TCK = (() => {
  try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch { return 100; }
})();

function commandFor(runner, elf, cpus) {
  if (runner === 'c-ref') return [lib.REF_VMM, ['--cpus', String(cpus), elf]];
  if (runner === 'qemu') return [lib.QEMU, lib.qemuArgs(elf, cpus)];
  // Node's own start-up and tsvmm's module loading, without KVM: prints one byte and exits.
  if (runner === 'node-baseline') {
    return [process.execPath, ['-e', `require(${JSON.stringify(path.join(lib.ROOT, 'dist', 'main', 'vmm', 'machine'))}); process.stdout.write('x')`]];
  }
  return [process.execPath, [path.join(lib.ROOT, 'dist', 'main.js'), '--kernel', elf, '--cpus', String(cpus),
    '--mem', String(lib.MEM_MIB), '--serial', 'stdio']];
}

function cpuTicks(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
}

/** CPU time of every thread of `pid` in ns (first field of /proc/<pid>/task/<tid>/schedstat). */
function cpuNanos(pid) {
  let total = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch { /* the thread ended */ }
  }
  return total;
}

function vmRssKiB(pid) {
  const m = /VmRSS:\s*(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function threadCount(pid) {
  const m = /Threads:\s*(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** Spawns a VMM on the idle guest; measures first byte, ready line, RSS, idle CPU and SIGTERM handling. */
function idleRun(runner, cpus, { measureIdle }) {
  return new Promise((resolve, reject) => {
    const [cmd, args] = commandFor(runner, lib.GUEST.idle, cpus);
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
    let out = '';
    let err = '';
    const result = { runner, cpus };
    let readySeen = false;
    const killTimer = setTimeout(() => { child.kill('SIGKILL'); }, 60000);
    child.stderr.on('data', (d) => { err += d; });
    child.stdout.on('data', async (d) => {
      if (result.firstByteMs === undefined) result.firstByteMs = ms();
      out += d.toString('latin1');
      if (!readySeen && /idle: ready cpus=(\d+)/.test(out)) {
        readySeen = true;
        result.readyMs = ms();
        result.online = Number(/idle: ready cpus=(\d+)/.exec(out)[1]);
        if (!measureIdle) {
          child.kill('SIGKILL');
          return;
        }
        try {
          await lib.sleep(500); // let the device thread finish polling and park
          result.rssKiB = vmRssKiB(child.pid);
          result.threads = threadCount(child.pid);
          const c0 = cpuTicks(child.pid);
          const n0 = cpuNanos(child.pid);
          const w0 = process.hrtime.bigint();
          await lib.sleep(IDLE_SECONDS * 1000);
          const c1 = cpuTicks(child.pid);
          const n1 = cpuNanos(child.pid);
          const wall = Number(process.hrtime.bigint() - w0) / 1e9;
          result.idleCpuPercentTicks = (((c1 - c0) / CLK_TCK) / wall) * 100;
          result.idleCpuPercent = (((n1 - n0) / 1e9) / wall) * 100;
          result.sigtermAtMs = ms();
          child.kill('SIGTERM');
        } catch (error) {
          child.kill('SIGKILL');
          reject(error);
        }
      }
    });
    child.on('close', (code, signal) => {
      clearTimeout(killTimer);
      result.exitCode = code;
      result.exitSignal = signal;
      if (result.sigtermAtMs !== undefined) result.sigtermToExitMs = ms() - result.sigtermAtMs;
      result.stderr = err.trim().slice(-300);
      if (!readySeen) reject(new Error(`${runner} --cpus ${cpus}: no "idle: ready" line (exit ${code ?? signal}): ${err}`));
      else resolve(result);
    });
  });
}

/**
 * Spawns `node dist/main.js --kernel guests/out/hello.elf` style runs: spawn to first byte and to exit.
 * tsvmm runs with --stats, which reports when the boot vCPU first entered KVM_RUN (the guest's
 * first instruction) counted from the process's own start.
 */
function wholeRun(runner, elf) {
  return new Promise((resolve) => {
    const [cmd, args] = commandFor(runner, elf, 1);
    if (runner === 'tsvmm') args.push('--stats');
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
    let firstByteMs;
    let stderr = '';
    child.stdout.on('data', () => { if (firstByteMs === undefined) firstByteMs = ms(); });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (code) => {
      const match = stderr.match(/start-up: first guest instruction ([\d.]+) ms after process start/);
      resolve({ firstByteMs, totalMs: ms(), code, firstInstructionMs: match ? Number(match[1]) : undefined });
    });
  });
}

/** tsvmm in this process: Machine.create, then run() until the first serial byte. */
async function inProcess(cpus, elf) {
  const { Machine } = require(path.join(lib.ROOT, 'dist', 'main', 'vmm', 'machine'));
  const kernel = new Uint8Array(fs.readFileSync(elf));
  const t0 = process.hrtime.bigint();
  const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
  let firstByteMs;
  let machine;
  const firstByte = new Promise((resolve) => {
    machine = Machine.create({ cpus, memoryMiB: lib.MEM_MIB }, {
      kernel,
      serialOutput: () => { if (firstByteMs === undefined) { firstByteMs = ms(); resolve(); } },
    });
  });
  const m = await machine;
  const createMs = ms();
  const running = m.run();
  await firstByte;
  m.end({ kind: 'stopped', cause: { by: 'request' } });
  await running;
  await m.close();
  return { createMs, firstByteMs, runToFirstByteMs: firstByteMs - createMs };
}

async function main(options = {}) {
  const rounds = options.rounds ?? 3;
  lib.ensureBuilt();
  const runners = ['c-ref'];
  if ((options.qemu ?? true) && lib.qemuVersion()) runners.push('qemu');
  runners.push('tsvmm');
  const labels = { 'c-ref': 'C reference', qemu: 'QEMU', tsvmm: 'tsvmm' };
  const hello = path.join(lib.ROOT, 'guests', 'out', 'hello.elf');
  if (!fs.existsSync(hello)) throw new Error('guests/out/hello.elf is missing: run `make -C guests`');
  const start = {};
  const whole = {};
  const inproc = [];
  let nodeBaseline;
  for (let round = 1; round <= rounds; round++) {
    for (const runner of runners) {
      lib.log(`startup: round ${round}/${rounds}: ${runner}`);
      (start[runner] ??= []).push(await idleRun(runner, 1, { measureIdle: false }));
      (whole[runner] ??= []).push(await wholeRun(runner, hello));
    }
    inproc.push(await inProcess(1, hello));
    (nodeBaseline ??= []).push(await wholeRun('node-baseline', hello));
  }
  const idle = {};
  for (const runner of runners) {
    for (const cpus of [1, 8]) {
      lib.log(`startup: idle ${runner} with ${cpus} vCPUs`);
      idle[`${runner}/${cpus}`] = await idleRun(runner, cpus, { measureIdle: true });
    }
  }

  const med = (list, key) => lib.median(list.map((x) => x[key]));
  const startRows = [['runner', 'hello.elf: spawn -> first serial byte (ms)', 'hello.elf: spawn -> exit (ms)', 'idle.elf: spawn -> first byte (ms)']];
  for (const runner of runners) {
    startRows.push([labels[runner], med(whole[runner], 'firstByteMs').toFixed(1), med(whole[runner], 'totalMs').toFixed(1),
      med(start[runner], 'firstByteMs').toFixed(1)]);
  }
  startRows.push(['node + require(dist/main/vmm/machine), no VM', med(nodeBaseline, 'firstByteMs').toFixed(1), med(nodeBaseline, 'totalMs').toFixed(1), '-']);
  const inprocRow = {
    createMs: med(inproc, 'createMs'), runToFirstByteMs: med(inproc, 'runToFirstByteMs'), firstByteMs: med(inproc, 'firstByteMs'),
  };
  const idleRows = [['runner', 'vCPUs', 'VmRSS (MiB)', 'threads', `idle CPU over ${IDLE_SECONDS} s (% of a core, schedstat)`, 'SIGTERM -> exit (ms)', 'exit']];
  for (const runner of runners) {
    for (const cpus of [1, 8]) {
      const r = idle[`${runner}/${cpus}`];
      idleRows.push([labels[runner], `${cpus}${r.online !== cpus ? ` (${r.online} up)` : ''}`, (r.rssKiB / 1024).toFixed(1), String(r.threads),
        r.idleCpuPercent.toFixed(3), r.sigtermToExitMs.toFixed(1), r.exitSignal ? `signal ${r.exitSignal}` : `code ${r.exitCode}`]);
    }
  }
  const tsFirst = med(whole.tsvmm, 'firstInstructionMs');
  const nodeFloor = med(nodeBaseline, 'firstByteMs');
  const targets = [
    { target: 'start to first guest instruction < 100 ms (tsvmm --stats: process start -> first KVM_RUN, hello.elf)', value: tsFirst, limit: 100, met: tsFirst < 100, shown: `${tsFirst.toFixed(1)} ms (Node start + loading tsvmm alone: ${nodeFloor.toFixed(1)} ms; in-process Machine.create ${inprocRow.createMs.toFixed(1)} ms)` },
  ];
  for (const cpus of [1, 8]) {
    const r = idle[`tsvmm/${cpus}`];
    targets.push({ target: `idle guest < 2% of a core (tsvmm, ${cpus} vCPU${cpus > 1 ? 's' : ''})`, value: r.idleCpuPercent, limit: 2, met: r.idleCpuPercent < 2, shown: `${r.idleCpuPercent.toFixed(3)}% (utime+stime ticks: ${r.idleCpuPercentTicks.toFixed(2)}%)` });
    const clean = r.exitCode === 143 || r.exitCode === 0;
    targets.push({ target: `SIGTERM ends tsvmm cleanly (${cpus} vCPU${cpus > 1 ? 's' : ''})`, value: r.exitCode, limit: 143, met: clean, shown: `exit ${r.exitSignal ? `signal ${r.exitSignal}` : `code ${r.exitCode}`} after ${r.sigtermToExitMs.toFixed(1)} ms${r.stderr ? `; stderr: ${r.stderr.replace(/\n/g, ' / ')}` : ''}` });
  }
  const summary = { date: new Date().toISOString(), machine: lib.machineInfo(), rounds, start, whole, inProcess: inproc, idle, targets };
  fs.writeFileSync(path.join(lib.OUT, 'startup.json'), `${JSON.stringify(summary, null, 2)}\n`);
  const table = `${lib.formatTable(startRows)}\n\n${lib.formatTable(idleRows)}`;
  const markdown = `${lib.markdownTable(startRows)}\n\ntsvmm in-process (median): Machine.create ${inprocRow.createMs.toFixed(1)} ms, run() to first serial byte ${inprocRow.runToFirstByteMs.toFixed(1)} ms.\n\n${lib.markdownTable(idleRows)}`;
  const lines = [`Start-up (median of ${rounds}) and idle cost`, table, '',
    `tsvmm in-process (median): Machine.create ${inprocRow.createMs.toFixed(1)} ms, run() to first serial byte ${inprocRow.runToFirstByteMs.toFixed(1)} ms`];
  for (const t of targets) lines.push(`${t.met ? 'MET   ' : 'MISSED'} ${t.target}: ${t.shown}`);
  const text = lines.join('\n');
  process.stdout.write(`${text}\n`);
  return { summary, table, markdown, targets, text };
}

module.exports = { main };

lib.runIfMain(module, 'startup', main);
