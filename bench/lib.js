'use strict';
// Shared plumbing of the bench scripts: their options, [k/N] progress and
// Ctrl-C handling, the competing load, building the bench guests and the C
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
  exitQuick: path.join(OUT, 'exit-bench-quick.elf'),
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

/** `npm run build` (scripts/build.js: addon if missing, TypeScript, guests), for run-all after its options are checked. */
function buildProject() {
  log('bench: building (scripts/build.js)');
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build.js')], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
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

// ---- Child processes: every one the benches start is killed when the bench ends, however it ends ----

const liveChildren = new Set();

/** Remembers `child` until it exits, so an interrupted bench can kill it. */
function track(child) {
  liveChildren.add(child);
  child.on('exit', () => liveChildren.delete(child));
  return child;
}

function killChildren() {
  for (const child of liveChildren) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  liveChildren.clear();
}

const SIGNAL_NUMBERS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
let handlersInstalled = false;

/** Ctrl-C (and SIGTERM, SIGHUP) kills the load and every VMM the bench started, then exits 128+n. */
function installInterruptHandlers(name) {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killChildren);
  for (const [signal, number] of Object.entries(SIGNAL_NUMBERS)) {
    process.on(signal, () => {
      const n = liveChildren.size;
      killChildren();
      process.stderr.write(`\n${name}: stopped by ${signal}${n ? ` (killed ${n} child process${n > 1 ? 'es' : ''}, the competing load included)` : ''}\n`);
      process.exit(128 + number);
    });
  }
}

/** CPU time of every thread of `pid` in ns (first field of /proc/<pid>/task/<tid>/schedstat), NaN once it is gone. */
function cpuNanos(pid) {
  let total = 0;
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch { /* the thread ended */ }
    }
  } catch {
    return NaN;
  }
  return total;
}

/**
 * Starts one competing CPU-bound process (`yes > /dev/null`); stop() kills it
 * and returns the share of a core it got meanwhile (in %), which says how much
 * it really competed.
 */
async function startLoad() {
  const devNull = fs.openSync('/dev/null', 'w');
  let child;
  try {
    child = track(spawn('yes', [], { stdio: ['ignore', devNull, 'ignore'] }));
  } finally {
    fs.closeSync(devNull);
  }
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (error) => reject(new Error(`cannot start the competing load (yes > /dev/null): ${error.message}`)));
  });
  const started = process.hrtime.bigint();
  const cpu0 = cpuNanos(child.pid);
  return {
    pid: child.pid,
    stop() {
      const cpu = cpuNanos(child.pid) - cpu0;
      const wall = Number(process.hrtime.bigint() - started);
      child.kill('SIGKILL');
      liveChildren.delete(child);
      return (cpu / wall) * 100;
    },
  };
}

/** Spawns a process, collects stdout, kills it after timeoutMs. */
function runProcess(cmd, args, timeoutMs) {
  return new Promise((resolve) => {
    const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
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
  // Optional: the benches also run older trees (before/after comparisons), which lack the --stats histogram.
  const waits = machine.handOffWaits?.();
  await machine.close();
  const ok = exit.kind === 'reset' || exit.kind === 'poweroff';
  return { out: Buffer.concat(chunks).toString('latin1'), code: ok ? 0 : 1, reason: JSON.stringify(exit), stats, device, waits, err: warnings.join('\n') };
}

/** vCPU `id`'s hand-off wait histogram as --stats prints it, or '' when the tree has none. */
function handOffWaitText(waits, id = 0) {
  if (!waits?.[id]) return '';
  const { handOffHistogramText } = require(path.join(ROOT, 'dist', 'shared', 'vcpu-stats'));
  return handOffHistogramText(waits[id]);
}

/** The "bench: <kind> median=.. p90=.. min=.." and "bench: b2b <kind> total=.. n=.." lines of a guest's output, by kind. */
function parseBench(text) {
  const kinds = {};
  let tscHz;
  for (const line of text.split(/\r?\n/)) {
    const m = /bench: (\S+) median=(\d+) p90=(\d+) min=(\d+)(?: mean=(\d+))? n=(\d+)/.exec(line);
    if (m) kinds[m[1]] = { ...kinds[m[1]], median: +m[2], p90: +m[3], min: +m[4], mean: m[5] ? +m[5] : undefined, n: +m[6] };
    const b = /bench: b2b (\S+) total=(\d+) n=(\d+) avg=(\d+)/.exec(line);
    if (b) kinds[b[1]] = { ...kinds[b[1]], b2b: { total: +b[2], n: +b[3], avg: +b[2] / +b[3] } };
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

const RESULTS = path.join(__dirname, 'RESULTS.md');

/**
 * Replaces the section of bench/RESULTS.md under `heading` (a "## " line, up to
 * the next "## " heading) with `section`, or appends it (--write-results of one script).
 */
function writeResultsSection(heading, section, file = RESULTS) {
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# tsvmm benchmark results\n';
  const escaped = heading.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const start = old.search(new RegExp(`^${escaped}[ \\t]*$`, 'm'));
  let text;
  if (start < 0) {
    text = `${old.replace(/\n*$/, '\n')}\n${section}`;
  } else {
    const rest = old.slice(start + heading.length);
    const next = rest.search(/^## /m);
    text = old.slice(0, start) + section.replace(/\n*$/, '\n') + (next < 0 ? '' : `\n${rest.slice(next)}`);
  }
  fs.writeFileSync(file, text);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** min, median and max of the finite values. */
function spread(values) {
  const v = values.filter(Number.isFinite);
  return { median: median(v), min: v.length ? Math.min(...v) : NaN, max: v.length ? Math.max(...v) : NaN, values: v };
}

/** "1.23x" */
function ratioText(x) {
  return Number.isFinite(x) ? `${x.toFixed(2)}x` : '-';
}

/**
 * A goal's verdict line: met, or missed by how much, with the spread behind it.
 * `value` against `limit`; `atMost` says which side passes.
 */
function goal(target, value, limit, { atMost = true, unit = 'x', spreadText = '', detail = '' } = {}) {
  if (!Number.isFinite(value)) return { target, met: undefined, shown: `not measured${detail ? ` (${detail})` : ''}` };
  const met = atMost ? value <= limit : value >= limit;
  const show = (x) => (unit === 'x' ? `${x.toFixed(2)}x` : `${x.toFixed(1)} ${unit}`);
  let by = '';
  if (!met) {
    const how = atMost ? 'over' : 'short of';
    by = unit === 'ms'
      ? `, missed: ${Math.abs(value - limit).toFixed(1)} ms ${how} the ${limit} ms limit`
      : `, missed: ${(Math.abs(value / limit - 1) * 100).toFixed(0)}% ${how} the ${show(limit)} limit`;
  }
  return { target, value, limit, met, shown: `${show(value)}${spreadText ? ` (${spreadText})` : ''}${by}${detail ? `; ${detail}` : ''}` };
}

/** The goals as markdown list items. */
function goalLines(goals) {
  return goals.map((g) => `- ${g.met === undefined ? '**not checked**' : g.met ? '**met**' : '**missed**'}: ${g.target}: ${g.shown}`).join('\n');
}

/** The goals as text lines. */
function goalText(goals) {
  return goals.map((g) => `${g.met === undefined ? 'NOT CHECKED' : g.met ? 'MET   ' : 'MISSED'} ${g.target}: ${g.shown}`);
}

// ---- Hand-off modes: whatever `tsvmm --help` lists, so a new mode is benched without editing the benches ----

/** The --hand-off modes listed in a `tsvmm --help` text, and the one marked "(default)" (else the first). */
function handOffModesFromHelp(helpText) {
  const lines = helpText.split('\n');
  const at = lines.findIndex((l) => /^\s*--hand-off\b/.test(l));
  if (at < 0) throw new Error('`node dist/main.js --help` lists no --hand-off option: run `npm run build`');
  // The option's text runs on over indented continuation lines up to the next option.
  let text = lines[at].replace(/^\s*--hand-off\s+\S+\s*/, '');
  for (let i = at + 1; i < lines.length && /^\s{6,}\S/.test(lines[i]) && !/^\s*--/.test(lines[i]); i++) text += ` ${lines[i].trim()}`;
  const list = text.includes(':') ? text.slice(text.indexOf(':') + 1) : text;
  const modes = [];
  let defaultMode;
  for (const piece of list.split(/,|\bor\b/)) {
    const m = /^\s*([a-z][a-z0-9-]*)/.exec(piece);
    if (!m) continue;
    modes.push(m[1]);
    if (/\(default\)/.test(piece)) defaultMode = m[1];
  }
  if (modes.length === 0) throw new Error(`cannot read the hand-off modes from \`node dist/main.js --help\`: ${lines[at].trim()}`);
  return { modes, defaultMode: defaultMode ?? modes[0] };
}

let handOffCache;
/** The --hand-off modes `node dist/main.js --help` lists, and which one is the default. */
function handOffModes() {
  if (!handOffCache) {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'main.js'), '--help'], { encoding: 'utf8' });
    handOffCache = handOffModesFromHelp(r.stdout || '');
  }
  return handOffCache;
}

// ---- Options every bench script shares ----

class UsageError extends Error {}

const OPTION_HELP = {
  rounds: ['--rounds N', 'interleaved rounds per runner (default 3; 1 with --quick)'],
  quick: ['--quick', 'a short smoke run (1 round, fewer exits per run, fewer vCPU counts): checks that everything runs; its figures mean little'],
  qemu: ['--no-qemu', 'leave QEMU out (its ratios and the goals against it are not checked)'],
  load: ['--no-load', 'skip the runs under one competing busy process (yes > /dev/null)'],
  handOff: ['--hand-off LIST', 'tsvmm hand-off modes, comma-separated (default: every mode `node dist/main.js --help` lists)'],
  writeResults: ['--write-results', 'rewrite the tracked results (bench/RESULTS.md, bench/exit-latency.svg); without it, stdout and bench/out/ only'],
};

/** The usage text of a bench script taking `accepts` (keys of OPTION_HELP). */
function usage(script, accepts, description) {
  const rows = [...accepts.map((k) => OPTION_HELP[k]), ['--help', 'this text']];
  const width = Math.max(...rows.map((r) => r[0].length)) + 2;
  const synopsis = rows.map((r) => `[${r[0]}]`).join(' ');
  return `usage: node bench/${script} ${synopsis}\n\n${description}\n\n${rows.map((r) => `  ${r[0].padEnd(width)}${r[1]}`).join('\n')}\n`;
}

/** Strict options: anything not in `accepts` is a UsageError naming it. */
function parseOptions(argv, accepts) {
  const options = { rounds: undefined, quick: false, qemu: true, load: true, handOffs: undefined, writeResults: false, help: false };
  const takes = (key) => accepts.includes(key);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${flag} needs a value (try --help)`);
      return v;
    };
    if (flag === '--help' || flag === '-h') options.help = true;
    else if (flag === '--rounds' && takes('rounds')) {
      const v = value();
      if (!/^[1-9][0-9]*$/.test(v) || Number(v) > 1000) throw new UsageError(`--rounds wants a whole number from 1 to 1000, not ${JSON.stringify(v)}`);
      options.rounds = Number(v);
    } else if (flag === '--quick' && takes('quick') && inline === undefined) options.quick = true;
    else if (flag === '--no-qemu' && takes('qemu') && inline === undefined) options.qemu = false;
    else if (flag === '--no-load' && takes('load') && inline === undefined) options.load = false;
    else if (flag === '--write-results' && takes('writeResults') && inline === undefined) options.writeResults = true;
    else if (flag === '--hand-off' && takes('handOff')) options.handOffs = value().split(',').map((m) => m.trim()).filter(Boolean);
    else throw new UsageError(`unknown option ${JSON.stringify(arg)} (try --help)`);
  }
  options.rounds ??= options.quick ? 1 : 3;
  return options;
}

/** The tsvmm modes to run: --hand-off's list checked against what tsvmm offers, else all of them. */
function chosenHandOffs(options) {
  const { modes } = handOffModes();
  if (!options.handOffs) return modes;
  const unknown = options.handOffs.filter((m) => !modes.includes(m));
  if (unknown.length) throw new UsageError(`tsvmm has no hand-off mode ${unknown.join(', ')}; it has ${modes.join(', ')}`);
  return options.handOffs;
}

/** The hand-off mode the goals judge: tsvmm's default when it is run, else the first one run. */
function judgedHandOff(options) {
  const { modes, defaultMode } = handOffModes();
  const run = options.handOffs ?? modes;
  return run.includes(defaultMode) ? defaultMode : run[0];
}

/** `[k/N]` progress over a whole bench run (run-all shares one across every script). */
class Progress {
  constructor(total) {
    this.total = total;
    this.done = 0;
    this.started = Date.now();
  }

  step(text) {
    this.done++;
    const s = Math.round((Date.now() - this.started) / 1000);
    log(`[${this.done}/${this.total}] ${text} (${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')} elapsed)`);
  }
}

/**
 * Runs a bench script's main(options, progress) when that file is the program
 * (`node bench/<script>.js`): strict options (exit 2 with one line on a bad
 * one), --help, Ctrl-C handling; then `prepare(options)` if given (run-all
 * builds), the --hand-off list checked against `tsvmm --help`, and
 * `plan(options)` counts the steps for [k/N]. With `resultsHeading`, main's
 * result.section replaces that section of bench/RESULTS.md under
 * --write-results (`alsoWrote` names any other file main wrote).
 */
function runIfMain(scriptModule, { script, description, accepts, plan, main, prepare, resultsHeading, alsoWrote }) {
  if (require.main !== scriptModule) return;
  const name = script.replace(/\.js$/, '');
  // A script with a section of RESULTS.md: its main returns { section }, written there only with --write-results.
  const run = !resultsHeading ? main : async (options, progress) => {
    const result = await main(options, progress);
    if (!options.writeResults) return;
    writeResultsSection(resultsHeading, result.section);
    process.stdout.write(`${name}: wrote ${alsoWrote ? `${alsoWrote} and ` : ''}the "${resultsHeading}" section of bench/RESULTS.md\n`);
  };
  let options;
  try {
    options = parseOptions(process.argv.slice(2), accepts);
    if (options.help) {
      process.stdout.write(usage(script, accepts, description));
      process.exit(0);
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${name}: ${error.message}\n`);
    process.exit(2);
  }
  installInterruptHandlers(name);
  (async () => {
    prepare?.(options);
    if (accepts.includes('handOff')) options.handOffs = chosenHandOffs(options);
    await run(options, new Progress(plan(options)));
  })().then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(`${name}: ${bugOrMessage(error)}\n`);
      process.exit(error instanceof UsageError ? 2 : 1);
    },
  );
}

/** A failed run's message; the stack only for what looks like a bug in the bench itself. */
function bugOrMessage(error) {
  if (error instanceof TypeError || error instanceof ReferenceError || error instanceof RangeError) return error.stack;
  return error?.message ?? String(error);
}

module.exports = {
  runIfMain, parseOptions, usage, chosenHandOffs, judgedHandOff, handOffModes, handOffModesFromHelp, Progress, UsageError, installInterruptHandlers, bugOrMessage,
  ROOT, OUT, RESULTS, GUEST, REF_VMM, QEMU, MEM_MIB, REGFILE_BASE,
  log, buildProject, ensureBuilt, qemuVersion, runProcess, handOffWaitText, track, startLoad, cpuNanos, qemuArgs, registerFile, runTsvmm,
  parseBench, median, spread, ratioText, goal, goalLines, goalText, machineInfo, formatTable, markdownTable, writeResultsSection, sleep,
};
