'use strict';
// Firmware boot time (issue 9): Debian's SeaBIOS booting guests/mbr's disk
// image from a virtio-blk disk, under QEMU (-M pc, the same bios.bin) and
// under tsvmm, alternated in each round. Times from spawn() to SeaBIOS's
// banner on COM1, to its "Booting from Hard Disk...", to the boot sector's
// first line ("mbr: running") and to exit (the MBR resets once it has printed
// its checks). Both run with 128 MiB, 1 vCPU, COM1 on stdout and no debug
// console. The time is almost all guest code (SeaBIOS's POST runs at about
// 5 us per instruction here, under any VMM) plus each exit's cost.
//
// Writes bench/out/firmware-boot.json; with --write-results also the
// "## Firmware boot" section of bench/RESULTS.md.

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const lib = require('./lib');

const HEADING = '## Firmware boot';
const SEABIOS_BIN = '/usr/share/seabios/bios.bin';
const TIMEOUT_MS = 180_000;
const ACCEPTS = ['rounds', 'quick', 'qemu', 'writeResults'];
const DESCRIPTION = `Firmware boot: spawn to SeaBIOS's banner, to "Booting from Hard Disk...", to the boot sector's first line and
to exit, SeaBIOS booting guests/mbr from virtio-blk, QEMU and tsvmm alternated in each round.`;
const MARKS = [
  ['bannerMs', 'SeaBIOS (version'],
  ['bootingMs', 'Booting from Hard Disk...'],
  ['mbrMs', 'mbr: running'],
];

function runners(options) {
  return options.qemu !== false && lib.qemuVersion() ? ['qemu', 'tsvmm'] : ['tsvmm'];
}

function plan(options) {
  return 1 + options.rounds * runners(options).length;
}

/** Builds bench/out/mbr.img with the test suite's script (guests/out/mbr.bin must be built). */
function buildImage() {
  const run = spawnSync('bash', [path.join(lib.ROOT, 'scripts', 'make-disk-images.sh'), lib.OUT, 'mbr'], { encoding: 'utf8' });
  const image = path.join(lib.OUT, 'mbr.img');
  if (run.status !== 0 || !fs.existsSync(image)) throw new Error(`scripts/make-disk-images.sh failed: ${run.stderr.trim()}`);
  return image;
}

function command(runner, image) {
  if (runner === 'qemu') {
    return [lib.QEMU, ['-accel', 'kvm', '-M', 'pc', '-m', String(lib.MEM_MIB), '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio', '-bios', SEABIOS_BIN,
      '-drive', `file=${image},if=none,id=d0,format=raw`, '-device', 'virtio-blk-pci,drive=d0,disable-legacy=on']];
  }
  return [process.execPath, [path.join(lib.ROOT, 'dist', 'main.js'), '--bios', SEABIOS_BIN, '--mem', String(lib.MEM_MIB), '--disk', `path=${image}`]];
}

/** One boot: the time of each mark on COM1 and of exit, from spawn(), in ms. */
function bootOnce(runner, image) {
  const [cmd, args] = command(runner, image);
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const since = () => Number(process.hrtime.bigint() - started) / 1e6;
    const child = lib.track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    const times = {};
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => {
      out += chunk.toString('latin1');
      for (const [key, text] of MARKS) if (times[key] === undefined && out.includes(text)) times[key] = since();
    });
    child.stderr.on('data', (chunk) => { err += chunk.toString('latin1'); });
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      times.exitMs = since();
      const missing = MARKS.filter(([key]) => times[key] === undefined).map(([, text]) => JSON.stringify(text));
      if (code !== 0 || missing.length > 0 || !out.includes('mbr: reset')) {
        reject(new Error(`${runner}: exit ${code ?? signal}${missing.length ? `, never printed ${missing.join(', ')}` : ''}; stderr: ${err.trim().slice(0, 300)}`));
        return;
      }
      resolve(times);
    });
  });
}

const ms = (x) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const cell = (values) => {
  const s = lib.spread(values);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return values.length > 1 ? `${ms(s.median)} (${ms(s.min)}-${ms(s.max)}), mean ${ms(mean)}` : ms(s.median);
};

async function main(options, progress) {
  if (!fs.existsSync(SEABIOS_BIN)) throw new Error(`${SEABIOS_BIN} is missing: npm run setup (or apt-get install seabios)`);
  fs.mkdirSync(lib.OUT, { recursive: true });
  const image = buildImage();
  progress.step('built bench/out/mbr.img');
  const who = runners(options);
  const results = Object.fromEntries(who.map((r) => [r, []]));
  for (let round = 0; round < options.rounds; round++) {
    // Alternate which VMM goes first, so neither always boots on a warmer cache.
    for (const runner of round % 2 === 0 ? who : [...who].reverse()) {
      const times = await bootOnce(runner, image);
      results[runner].push(times);
      progress.step(`round ${round + 1}: ${runner} ${ms(times.mbrMs)} ms to the boot sector, ${ms(times.exitMs)} ms to exit`);
    }
  }
  const keys = [...MARKS.map(([key]) => key), 'exitMs'];
  const labels = { bannerMs: 'spawn -> SeaBIOS banner', bootingMs: 'spawn -> "Booting from Hard Disk..."', mbrMs: 'spawn -> MBR\'s first line', exitMs: 'spawn -> exit' };
  const rows = [['ms, median (min-max) and mean over rounds', ...who, ...(who.includes('qemu') ? ['tsvmm / QEMU (median of per-round ratios)'] : [])]];
  for (const key of keys) {
    const row = [labels[key], ...who.map((r) => cell(results[r].map((t) => t[key])))];
    if (who.includes('qemu')) {
      const ratios = results.tsvmm.map((t, i) => t[key] / results.qemu[i][key]);
      const s = lib.spread(ratios);
      row.push(ratios.length > 1 ? `${lib.ratioText(s.median)} (${lib.ratioText(s.min)}-${lib.ratioText(s.max)})` : lib.ratioText(s.median));
    }
    rows.push(row);
  }
  const intro = `SeaBIOS ${SEABIOS_BIN} booting guests/mbr (bench/out/mbr.img) from a modern-only virtio-blk disk, 128 MiB, 1 vCPU; ${options.rounds} round${options.rounds > 1 ? 's' : ''}, QEMU and tsvmm alternated.`;
  const summary = { date: new Date().toISOString(), machine: lib.machineInfo(), rounds: options.rounds, results };
  fs.writeFileSync(path.join(lib.OUT, 'firmware-boot.json'), `${JSON.stringify(summary, null, 2)}\n`);
  const section = `${HEADING}\n\n${intro}\n\n${lib.markdownTable(rows)}\n`;
  process.stdout.write(`Firmware boot: ${intro}\n${lib.formatTable(rows)}\n`);
  return { summary, section, goals: [] };
}

module.exports = { main, plan, ACCEPTS, HEADING };

lib.runIfMain(module, {
  script: 'firmware-boot.js',
  description: DESCRIPTION,
  accepts: ACCEPTS,
  plan,
  main,
  resultsHeading: HEADING,
});
