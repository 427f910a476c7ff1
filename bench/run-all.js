'use strict';
// `npm run bench`: exit latency, SMP scaling, start-up and virtio-blk, in that
// order, in one process (nothing else of ours runs meanwhile), then rewrites
// bench/RESULTS.md with the tables, the targets, the date and the machine.
//
//   node bench/run-all.js [--rounds N] [--no-qemu]

const fs = require('node:fs');
const path = require('node:path');
const lib = require('./lib');
const exitLatency = require('./exit-latency');
const smpScaling = require('./smp-scaling');
const startup = require('./startup');
const virtioBlk = require('./virtio-blk');

function targetLines(targets) {
  return targets.map((t) => `- ${t.met ? '**met**' : '**missed**'}: ${t.target}: ${t.shown}`).join('\n');
}

async function main() {
  const args = process.argv.slice(2);
  const roundsAt = args.indexOf('--rounds');
  const options = { rounds: roundsAt >= 0 ? Number(args[roundsAt + 1]) : 3, qemu: !args.includes('--no-qemu') };
  lib.ensureBuilt();
  const before = lib.machineInfo();
  const started = Date.now();
  const exits = await exitLatency.main(options);
  process.stdout.write('\n');
  const smp = await smpScaling.main(options);
  process.stdout.write('\n');
  const boot = await startup.main(options);
  process.stdout.write('\n');
  const blk = await virtioBlk.main(options);
  const info = lib.machineInfo();
  const minutes = ((Date.now() - started) / 60000).toFixed(1);
  const s = exits.summary;
  const md = `# tsvmm benchmark results

Written by \`npm run bench\` (bench/run-all.js) on ${new Date().toISOString().replace('T', ' ').replace(/\..*/, '')} UTC; the run took ${minutes} min.
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
| load average before / after | ${before.loadAverage.join(' ')} / ${info.loadAverage.join(' ')} |

Guest TSC: ${(s.tscHz / 1e6).toFixed(1)} MHz (the guest calibrates it against the in-kernel PIT channel 0).
Every number below is a ratio or a value measured in the same run as its reference; this host is noisy.

## Exit latency

Guest-visible cycles of one exit round trip (\`lfence; rdtsc; lfence; <access>; lfence; rdtsc; lfence\`)
net of the empty bracket (\`timer-only\`, measured in the same guest run and shown in its own row: under PVM
the bracket alone costs about one exit), median of ${s.rounds} interleaved rounds, each round the median of 2000 exits after 200 warm-up ones;
in parentheses the ratio to the C reference (bench/ref-vmm.c, every exit answered inline on the vCPU thread).
"device" = served on tsvmm's device thread (COM1 scratch register 0x3ff, the register file at 0xd0000000);
"unclaimed" = port 0x300 / MMIO 0xd0100000, answered on the vCPU thread. outsb16 = \`rep outsb\` of 16 bytes
(KVM exits once per byte here, so it is 16 exits).

${exits.markdown}

![exit latency](exit-latency.svg)

${targetLines(exits.targets)}

## SMP scaling

Every vCPU does 2000 forwarded reads of COM1's scratch register at the same time; aggregate exits per second
(all vCPUs' exits over the guest's wall time, BSP TSC) and the median per-exit latency across vCPUs.
The host has ${info.nproc} cores, so more than ${info.nproc} vCPUs share them.

${smp.markdown}

${targetLines(smp.targets)}

## Start-up and idle

${boot.markdown}

${targetLines(boot.targets)}

${virtioBlk.resultsSection(blk)}`;
  fs.writeFileSync(path.join(__dirname, 'RESULTS.md'), md);
  process.stdout.write('\nbench: wrote bench/RESULTS.md, bench/exit-latency.svg and bench/out/*.json\n');
}

main().then(
  () => process.exit(0),
  (error) => { process.stderr.write(`bench: ${error.stack || error}\n`); process.exit(1); },
);
