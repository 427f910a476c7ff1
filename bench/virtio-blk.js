'use strict';
// virtio-blk: guests/out/blk-bench.elf (polling, no interrupts) against one
// 64 MiB raw image under QEMU (virtio-blk-pci, disable-legacy=on,
// cache=writeback, QEMU's default: the host page cache, as tsvmm uses) and
// under tsvmm (in this process, Machine.create with a disk device),
// `--rounds` interleaved rounds (default 3, the order alternating). Per
// workload: IOPS and MB/s from the guest's batch cycles and its TSC rate, and
// for the QD1 workloads the median and mean request latency (per-request
// rdtsc brackets, net of the empty bracket); each cell is the median over
// rounds with min / max beside it, and the tsvmm/QEMU ratio of the medians.
//
// Writes bench/out/virtio-blk.json and the image bench/out/blk-bench.img (both
// untracked); bench/RESULTS.md only with --write-results (its "## virtio-blk"
// section, replaced in place or appended).

const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const lib = require('./lib');

const NAME = 'virtio-blk';
const ELF = path.join(lib.ROOT, 'guests', 'out', 'blk-bench.elf');
const IMAGE = path.join(lib.OUT, 'blk-bench.img');
const IMAGE_BYTES = 64 * 1024 * 1024;
const SECTOR = 512;
const RUN_TIMEOUT_MS = 180000;
const SECTION = '## virtio-blk';
/** The guest's workloads, in its order; `qd1` ones carry per-request latencies. */
const WORKLOADS = [
  { key: 'rand-read-4k qd1', latency: true },
  { key: 'rand-read-4k qd16', latency: false, batched: true },
  { key: 'seq-read-1m qd1', latency: true },
  { key: 'seq-write-1m qd1', latency: true },
];
const ACCEPTS = ['rounds', 'quick', 'qemu', 'writeResults'];
const DESCRIPTION = `Runs guests/out/blk-bench.elf on a 64 MiB image (bench/out/blk-bench.img) under QEMU
(cache=writeback) and tsvmm (in this process), and prints IOPS, MB/s and QD1 latency.`;
/** Issue 8: QD16 IOPS at least QEMU's, QD1 median latency at most this many times QEMU's. */
const QD1_LATENCY_GOAL = 1.2;

function runnerList(options) {
  return options.qemu !== false && lib.qemuVersion() ? ['tsvmm', 'qemu'] : ['tsvmm'];
}

function plan(options) {
  return options.rounds * runnerList(options).length;
}

/** The image pattern of guests/common/virtio-blk.h: byte i of sector s = (s*7 + i) & 0xff, bytes 0-3 = s (le32). */
function writeImage(file) {
  const ramp = Buffer.alloc(2 * 256 + SECTOR);
  for (let i = 0; i < ramp.length; i++) ramp[i] = i & 0xff;
  const chunk = Buffer.alloc(1024 * 1024);
  const perChunk = chunk.length / SECTOR;
  const fd = fs.openSync(file, 'w');
  try {
    for (let first = 0; first < IMAGE_BYTES / SECTOR; first += perChunk) {
      for (let j = 0; j < perChunk; j++) {
        const s = first + j;
        const rot = (s * 7) & 0xff;
        ramp.copy(chunk, j * SECTOR, rot, rot + SECTOR);
        chunk.writeUInt32LE(s >>> 0, j * SECTOR);
      }
      fs.writeSync(fd, chunk);
    }
  } finally {
    fs.closeSync(fd);
  }
}

function ensureGuest() {
  execFileSync('make', ['-s', '-C', path.join(lib.ROOT, 'guests'), 'out/blk-bench.elf'], { stdio: ['ignore', 'ignore', 'inherit'] });
}

function qemuBlkArgs() {
  return [...lib.qemuArgs(ELF, 1),
    '-drive', `file=${IMAGE},if=none,id=d0,format=raw,cache=writeback`,
    '-device', 'virtio-blk-pci,drive=d0,disable-legacy=on'];
}

/** The guest's workload lines, by "<workload> qd<D>", each a map of its key=value fields (numbers). */
function parseGuest(text) {
  const workloads = {};
  let info;
  for (const line of text.split(/\r?\n/)) {
    const m = /^blk-bench: (\S+) qd(\d+) (n=.*)$/.exec(line.replace(/^.*?(?=blk-bench: )/, ''));
    if (m) {
      const fields = { qd: Number(m[2]) };
      for (const pair of m[3].trim().split(/\s+/)) {
        const [k, v] = pair.split('=');
        fields[k] = Number(v);
      }
      workloads[`${m[1]} qd${m[2]}`] = fields;
      continue;
    }
    const t = /blk-bench: tsc_hz=(\d+) source=(\S+) bracket_cycles=(\d+)/.exec(line);
    if (t) info = { ...info, tscHz: Number(t[1]), tscSource: t[2], bracket: Number(t[3]) };
    const c = /blk-bench: (capacity=.*)$/.exec(line);
    if (c) info = { ...info, device: c[1] };
  }
  return { workloads, info };
}

/** Derived figures of one workload line: IOPS and MB/s from the batch, latencies in microseconds. */
function derive(w) {
  const seconds = w.total_cycles / w.tsc_hz;
  const iops = w.n / seconds;
  const us = (cycles) => (cycles === undefined ? undefined : (cycles / w.tsc_hz) * 1e6);
  // QD16: the batch minus the guest's own time in its drain/post passes, per request: time spent waiting on the device.
  const waitUs = w.guest_cycles === undefined ? undefined : us((w.total_cycles - w.guest_cycles) / w.n);
  const guestShare = w.guest_cycles === undefined ? undefined : w.guest_cycles / w.total_cycles;
  return { iops, mbps: (iops * w.bytes) / 1e6, medianUs: us(w.median_cycles), meanUs: us(w.mean_cycles), p90Us: us(w.p90_cycles), waitUs, guestShare, notifies: w.notifies, batches: w.batches };
}

async function runOnce(runner) {
  const r = runner === 'qemu' ? await lib.runProcess(lib.QEMU, qemuBlkArgs(), RUN_TIMEOUT_MS) : await lib.runTsvmm(ELF, { timeoutMs: RUN_TIMEOUT_MS, devices: [{ kind: 'disk', path: IMAGE, readonly: false }] });
  const parsed = parseGuest(r.out);
  const missing = WORKLOADS.filter((w) => !parsed.workloads[w.key]);
  if (!r.out.includes('blk-bench: done') || missing.length) {
    const failLine = (/blk-bench: FAIL.*/.exec(r.out) || [''])[0];
    throw new Error(`${runner}: the guest did not finish (exit ${r.code ?? r.signal} ${r.reason ?? ''}) ${failLine}\n${r.err ?? ''}\n${r.out.slice(-800)}`);
  }
  const figures = {};
  for (const w of WORKLOADS) figures[w.key] = { ...derive(parsed.workloads[w.key]), raw: parsed.workloads[w.key] };
  return { figures, info: parsed.info, stats: r.stats, device: r.device };
}

const fmt = (x) => {
  if (!Number.isFinite(x)) return '-';
  if (x >= 1000) return String(Math.round(x));
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
};
const cell = (s) => (s ? `${fmt(s.median)} (${fmt(s.min)}-${fmt(s.max)})` : '-');

/** The results section of bench/RESULTS.md (heading included), from main()'s result. */
function resultsSection(result) {
  return `${SECTION}

\`node bench/virtio-blk.js\`: guests/out/blk-bench.elf polls one virtio-blk PCI device (no interrupts) on a 64 MiB raw image
in the host page cache: QEMU with \`cache=writeback\` (its default) and tsvmm (which always uses the page cache).
4 KiB random reads at QD1 and QD16, 1 MiB sequential reads and writes at QD1 (one 1 MiB data descriptor; both devices
offer seg_max 254 and no size_max). IOPS and MB/s from the guest's rdtsc around each batch; latency = per-request rdtsc
brackets net of an empty bracket. QD16 "device wait" = (batch - the guest's own drain/post time) / requests; guest
instructions run at ~1 per us here, so the guest's share of a QD16 batch is large and common to both. Each cell: median over ${result.rounds} interleaved rounds (min-max). Measured on
${result.summary.date.replace('T', ' ').replace(/\..*/, '')} UTC, ${result.summary.machine.cpuModel}, ${result.summary.machine.nproc} CPUs, ${result.summary.qemu}; load average
before / after: ${result.loadBefore.join(' ')} / ${result.loadAfter.join(' ')}.

${result.markdown}

${lib.goalLines(result.targets)}
`;
}

async function main(options, progress = new lib.Progress(plan(options))) {
  const { rounds } = options;
  lib.ensureBuilt();
  ensureGuest();
  const runners = runnerList(options);
  const withQemu = runners.includes('qemu');
  const loadBefore = lib.machineInfo().loadAverage;
  lib.log(`${NAME}: writing the ${IMAGE_BYTES >> 20} MiB image ${path.relative(lib.ROOT, IMAGE)}`);
  writeImage(IMAGE);
  const raw = Object.fromEntries(runners.map((r) => [r, []]));
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 ? runners : [...runners].reverse();
    for (const runner of order) {
      progress.step(`${NAME}: round ${round}/${rounds}: ${runner === 'qemu' ? 'QEMU' : 'tsvmm'}`);
      raw[runner].push(await runOnce(runner));
    }
  }
  const info = lib.machineInfo();

  const metric = (runner, key, field) => lib.spread(raw[runner].map((r) => r.figures[key][field]));
  const rows = [['workload: metric', 'tsvmm', ...(withQemu ? ['QEMU', 'tsvmm/QEMU'] : [])]];
  const results = {};
  for (const w of WORKLOADS) {
    const fields = [['iops', 'IOPS'], ['mbps', 'MB/s'], ...(w.latency ? [['medianUs', 'median latency us'], ['meanUs', 'mean latency us']] : []),
      ...(w.batched ? [['waitUs', 'device wait us/request'], ['guestShare', 'guest share of the batch']] : [])];
    results[w.key] = {};
    for (const [field, label] of fields) {
      const t = metric('tsvmm', w.key, field);
      const q = withQemu ? metric('qemu', w.key, field) : undefined;
      // Rounds alternate the order, so round i of tsvmm and of QEMU ran next to each other.
      const roundRatios = q ? lib.spread(t.values.map((v, i) => v / q.values[i])) : undefined;
      results[w.key][field] = { tsvmm: t, qemu: q, ratio: q ? t.median / q.median : undefined, roundRatios };
      rows.push([`${w.key}: ${label}`, cell(t), ...(withQemu ? [cell(q), `${(t.median / q.median).toFixed(2)}x`] : [])]);
    }
  }

  const targets = [];
  const perRound = (r) => (rounds > 1 ? `; per round ${r.roundRatios.min.toFixed(2)}-${r.roundRatios.max.toFixed(2)}x` : '');
  if (withQemu) {
    const qd16 = results['rand-read-4k qd16'].iops;
    const qd1 = results['rand-read-4k qd1'].medianUs;
    targets.push(lib.goal('rand-read-4k QD16 IOPS >= QEMU', qd16.ratio, 1, {
      atMost: false, spreadText: `${fmt(qd16.tsvmm.median)} vs ${fmt(qd16.qemu.median)} IOPS${perRound(qd16)}`,
    }));
    targets.push(lib.goal(`rand-read-4k QD1 median latency <= ${QD1_LATENCY_GOAL}x QEMU`, qd1.ratio, QD1_LATENCY_GOAL, {
      spreadText: `${fmt(qd1.tsvmm.median)} vs ${fmt(qd1.qemu.median)} us${perRound(qd1)}`,
    }));
    for (const t of targets) t.shown = t.shown.replace(/^([\d.]+)x/, '$1x QEMU');
  } else {
    targets.push({ target: 'QD16 IOPS >= QEMU and QD1 latency <= 1.2x QEMU', shown: 'QEMU not run' });
  }

  const last = raw.tsvmm[raw.tsvmm.length - 1];
  const guestInfo = last.info || {};
  const notifyLines = runners.map((r) => {
    const f = raw[r][raw[r].length - 1].figures;
    return `${r === 'qemu' ? 'QEMU' : 'tsvmm'} notifies (last round): ${WORKLOADS.map((w) => `${w.key} ${f[w.key].notifies}`).join(', ')}; qd16 batches ${f['rand-read-4k qd16'].batches}`;
  });
  const hostLine = last.stats
    ? `tsvmm host counters (last round): vcpu0 kvmRuns=${last.stats[0].kvmRuns} forwarded=${last.stats[0].forwarded} spinHits=${last.stats[0].spinHits} parks=${last.stats[0].parks}; device thread served=${last.device.served} parks=${last.device.parks}`
    : '';
  const table = lib.formatTable(rows);
  const markdown = `${lib.markdownTable(rows)}\n\nGuest: ${guestInfo.device ?? '?'}; TSC ${((guestInfo.tscHz ?? 0) / 1e6).toFixed(1)} MHz (${guestInfo.tscSource ?? '?'}), empty bracket ${guestInfo.bracket ?? '?'} cycles.\n${notifyLines.map((l) => `\n- ${l}`).join('')}${hostLine ? `\n- ${hostLine}` : ''}`;
  const summary = {
    date: new Date().toISOString(), machine: info, qemu: lib.qemuVersion() || 'not installed', rounds, runners,
    results, targets,
    rawRounds: Object.fromEntries(runners.map((r) => [r, raw[r].map((x) => ({ info: x.info, workloads: Object.fromEntries(Object.entries(x.figures).map(([k, v]) => [k, v.raw])) }))])),
  };
  fs.writeFileSync(path.join(lib.OUT, 'virtio-blk.json'), `${JSON.stringify(summary, null, 2)}\n`);

  const lines = [];
  lines.push(`virtio-blk, polling guest, 64 MiB image in the page cache (QEMU cache=writeback); median (min-max) of ${rounds} interleaved rounds; load average ${loadBefore.join(' ')} -> ${info.loadAverage.join(' ')}`);
  if (!withQemu) lines.push(`QEMU: ${options.qemu === false ? 'not run (--no-qemu)' : 'not installed'}`);
  lines.push(table, '');
  lines.push(`guest: ${guestInfo.device ?? '?'}; tsc ${guestInfo.tscHz} Hz (${guestInfo.tscSource}); empty bracket ${guestInfo.bracket} cycles`);
  lines.push(...notifyLines);
  if (hostLine) lines.push(hostLine);
  lines.push(...lib.goalText(targets));
  const text = lines.join('\n');
  process.stdout.write(`${text}\n`);
  const result = { summary, table, markdown, targets, goals: targets, text, rounds, loadBefore, loadAfter: info.loadAverage };
  result.section = resultsSection(result);
  return result;
}

module.exports = { main, plan, ACCEPTS, HEADING: SECTION, WORKLOADS };

lib.runIfMain(module, {
  script: 'virtio-blk.js',
  description: DESCRIPTION,
  accepts: ACCEPTS,
  plan,
  main,
  resultsHeading: SECTION,
});
