'use strict';
// Shared plumbing of the bench scripts: building the bench guests and the C
// reference, running a guest under each VMM (C reference, QEMU, tsvmm
// in-process), parsing the guests' "bench:" lines, and small statistics and
// formatting helpers. Plain CommonJS; needs only Node, gcc, make and dist/.

const { spawn, execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(__dirname, 'out');
const GUEST = {
  exit: path.join(OUT, 'exit-bench.elf'),
  smp: path.join(OUT, 'smp-bench.elf'),
  idle: path.join(OUT, 'idle.elf'),
};
const REF_VMM = path.join(OUT, 'ref-vmm');
const REF_VMM_SRC = path.join(__dirname, 'ref-vmm.c');
const QEMU = 'qemu-system-x86_64';
/** Guest RAM for every runner (QEMU's -m 128). */
const MEM_MIB = 128;
/** The register-file device the exit bench guest reads and writes (unassigned under QEMU). */
const REGFILE_BASE = 0xd000_0000;
const REGFILE_BYTES = 64;

function log(line) {
  process.stderr.write(`${line}\n`);
}

function newer(target, sources) {
  if (!fs.existsSync(target)) return false;
  const t = fs.statSync(target).mtimeMs;
  return sources.every((s) => !fs.existsSync(s) || fs.statSync(s).mtimeMs <= t);
}

/** Builds what the benches need if it is missing or stale: dist/ must exist already (npm run build). */
function ensureBuilt() {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'main', 'vmm', 'machine.js'))) {
    throw new Error('dist/ is missing: run `npx tsc -p tsconfig.json` (or `npm run build`) first');
  }
  fs.mkdirSync(OUT, { recursive: true });
  execFileSync('make', ['-s', '-C', path.join(__dirname, 'guest')], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (!newer(REF_VMM, [REF_VMM_SRC])) {
    log('bench: building bench/out/ref-vmm');
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-pthread', '-o', REF_VMM, REF_VMM_SRC], { stdio: 'inherit' });
  }
}

let qemuVersionCache;
/** QEMU's version string, or undefined when it is not installed. */
function qemuVersion() {
  if (qemuVersionCache !== undefined) return qemuVersionCache || undefined;
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  qemuVersionCache = r.status === 0 ? r.stdout.split('\n')[0].trim() : '';
  return qemuVersionCache || undefined;
}

/** Spawns a process, collects stdout, kills it after timeoutMs. */
function runProcess(cmd, args, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d.toString('latin1'); });
    child.stderr.on('data', (d) => { err += d.toString('latin1'); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ out, err, code, signal });
    });
  });
}

function qemuArgs(elf, cpus) {
  const args = ['-accel', 'kvm', '-M', 'pc', '-m', String(MEM_MIB), '-kernel', elf,
    '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio'];
  // sockets=1,cores=N so CPUID.1:EBX[23:16] tells the guest how many CPUs to wait for.
  if (cpus > 1) args.push('-smp', `${cpus},sockets=1,cores=${cpus},threads=1`);
  return args;
}

/** A 64-byte register file: what the C reference has inline at 0xd0000000. */
function registerFile() {
  const regs = new Uint8Array(REGFILE_BYTES);
  return {
    name: 'bench-regfile',
    read(offset, data) {
      for (let i = 0; i < data.length; i++) data[i] = offset + i < REGFILE_BYTES ? regs[offset + i] : 0xff;
    },
    write(offset, data) {
      for (let i = 0; i < data.length; i++) if (offset + i < REGFILE_BYTES) regs[offset + i] = data[i];
    },
  };
}

/**
 * Boots `elf` in this process under tsvmm with hand-off `handOff` (and the
 * virtio `devices`, if any); resolves with the serial text, stats and warnings.
 */
async function runTsvmm(elf, { cpus = 1, handOff = 'spin-park', spinLimit, timeoutMs = 120000, devices = [] } = {}) {
  const { Machine } = require(path.join(ROOT, 'dist', 'main', 'vmm', 'machine'));
  const chunks = [];
  const warnings = [];
  const machine = await Machine.create({ cpus, memoryMiB: MEM_MIB, bootProtocol: 'linux', handOff, devices, ...(spinLimit ? { spinLimit } : {}) }, {
    kernel: new Uint8Array(fs.readFileSync(elf)),
    serialOutput: (bytes) => chunks.push(Buffer.from(bytes)),
    extraDevices: [{ bus: 'mmio', base: REGFILE_BASE, length: REGFILE_BYTES, device: registerFile() }],
    warn: (message) => warnings.push(message),
  });
  const timer = setTimeout(() => machine.end({ kind: 'stopped', cause: { by: 'timeout' } }), timeoutMs);
  let exit;
  try {
    exit = await machine.run();
  } finally {
    clearTimeout(timer);
  }
  const stats = machine.stats();
  const device = machine.deviceStats;
  await machine.close();
  const ok = exit.kind === 'reset' || exit.kind === 'poweroff';
  return { out: Buffer.concat(chunks).toString('latin1'), code: ok ? 0 : 1, reason: JSON.stringify(exit), stats, device, err: warnings.join('\n') };
}

/** The "bench: <kind> median=.. p90=.. min=.." lines of a guest's output, by kind. */
function parseBench(text) {
  const kinds = {};
  let tscHz;
  for (const line of text.split(/\r?\n/)) {
    const m = /bench: (\S+) median=(\d+) p90=(\d+) min=(\d+)(?: mean=(\d+))? n=(\d+)/.exec(line);
    if (m) kinds[m[1]] = { median: +m[2], p90: +m[3], min: +m[4], mean: m[5] ? +m[5] : undefined, n: +m[6] };
    const t = /bench: tsc-hz=(\d+) source=(\S+)/.exec(line);
    if (t) tscHz = { hz: +t[1], source: t[2] };
  }
  return { kinds, tscHz };
}

function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** The host facts RESULTS.md records. */
function machineInfo() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = (/model name\s*:\s*(.*)/.exec(cpuinfo) || [])[1] || 'unknown';
  const mhz = parseFloat((/cpu MHz\s*:\s*(.*)/.exec(cpuinfo) || [])[1] || 'NaN');
  let kernel = os.release();
  try { kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(); } catch { /* keep os.release() */ }
  return {
    kernel,
    cpuModel: model.trim(),
    cpuMHz: mhz,
    nproc: os.cpus().length,
    node: process.version,
    kvmPvm: fs.existsSync('/sys/module/kvm_pvm'),
    qemu: qemuVersion() || 'not installed',
    loadAverage: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

/** A fixed-width text table: rows of cells, the first row a header. */
function formatTable(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  const line = (r) => r.map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join('  ');
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

/** The same table as GitHub markdown. */
function markdownTable(rows) {
  const esc = (s) => String(s).replace(/\|/g, '\\|');
  return [
    `| ${rows[0].map(esc).join(' | ')} |`,
    `|${rows[0].map((_, c) => (c === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...rows.slice(1).map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs a bench script's main() when that file is the program (`node bench/<script>.js`), with the
 * options every script takes: `--rounds N` (default 3) and `--no-qemu`.
 */
function runIfMain(scriptModule, name, main) {
  if (require.main !== scriptModule) return;
  const args = process.argv.slice(2);
  const roundsAt = args.indexOf('--rounds');
  main({ rounds: roundsAt >= 0 ? Number(args[roundsAt + 1]) : 3, qemu: !args.includes('--no-qemu') }).then(
    () => process.exit(0),
    (error) => { process.stderr.write(`${name}: ${error.stack || error}\n`); process.exit(1); },
  );
}

module.exports = {
  runIfMain,
  ROOT, OUT, GUEST, REF_VMM, QEMU, MEM_MIB, REGFILE_BASE,
  log, ensureBuilt, qemuVersion, runProcess, qemuArgs, registerFile, runTsvmm,
  parseBench, median, machineInfo, formatTable, markdownTable, sleep,
};
