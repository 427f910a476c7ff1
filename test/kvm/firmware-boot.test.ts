// Firmware boots under tsvmm: Debian's SeaBIOS (the same bios.bin QEMU runs in
// qemu-firmware.test.ts, with the same disk image) finds tsvmm's PCI root, the
// PIIX3 and the virtio-blk disk, reprograms the disk's BAR, reads its RAM map
// and CPU count from fw_cfg and boots guests/mbr, which prints what it finds
// through INT 13h and INT 15h e820 and resets. The expectations are the QEMU
// test's (test/support/firmware.ts), applied to tsvmm's COM1 and SeaBIOS's log
// on tsvmm's debugcon. GRUB is in firmware-grub.test.ts (two minutes here).
// Not checked, with the reason printed: everything without SeaBIOS.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MAIN, explain, runTsvmm } from '../support/tsvmm';
import { SEABIOS_BIN, checkSeabios, e820FromSeabiosLog, expectedMbrLines, firmwareTsvmmArgs, makeDiskImage, runFirmware } from '../support/firmware';

const MBR_TIMEOUT_MS = 120_000; // 8-15 s here

const skip = fs.existsSync(SEABIOS_BIN) ? undefined : `not checked: ${SEABIOS_BIN} is missing (npm run setup, or apt-get install seabios)`;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-firmware-boot-'));
let mbrImage: string | undefined;

test.before(() => {
  if (skip) return;
  const mbr = makeDiskImage(tmp, 'mbr');
  if (!mbr.image) throw new Error(`mbr.img: ${mbr.reason}`);
  mbrImage = mbr.image;
});
test.after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

for (const variant of [{ cpus: 1 }, { cpus: 4 }, { cpus: 1, splitIrqchip: true }]) {
  const name = `--cpus ${variant.cpus}${variant.splitIrqchip ? ' --split-irqchip' : ''}`;
  test(`mbr.img ${name}: SeaBIOS boots guests/mbr from tsvmm's virtio-blk; INT 13h ext read, disk size and E820 as SeaBIOS reports`, async () => {
    if (skip) {
      console.log(skip);
      return;
    }
    const debugLog = path.join(tmp, `mbr-${variant.cpus}-${variant.splitIrqchip ? 'split' : 'kernel'}.log`);
    const args = [MAIN, ...firmwareTsvmmArgs(mbrImage as string, { ...variant, debugLog })];
    const run = await runFirmware(process.execPath, args, MBR_TIMEOUT_MS);
    const log = fs.existsSync(debugLog) ? fs.readFileSync(debugLog, 'latin1') : '';
    console.log(`  mbr.img ${name}: tsvmm exited after ${(run.ms / 1000).toFixed(1)} s`);
    const context = `node ${args.join(' ')}: COM1 ${JSON.stringify(run.output)}, stderr ${JSON.stringify(run.stderr)}`;
    assert.not.ok(run.timedOut, `still running after ${MBR_TIMEOUT_MS} ms; ${context}`);
    assert.is(run.status, 0, `exit status (the guest resets through the i8042); ${context}`);
    checkSeabios(run, log, variant.cpus, context);
    // SeaBIOS read its configuration from fw_cfg, by DMA, and took its RAM map from etc/e820
    for (const line of ['Found QEMU fw_cfg', 'QEMU fw_cfg DMA interface supported', 'qemu/e820: addr 0x0000000000000000 len 0x0000000008000000 [RAM]', 'PS2 keyboard initialized']) {
      assert.ok(log.includes(line), `SeaBIOS log: "${line}"; log ${log}`);
    }
    // it found the host bridge, the PIIX3 and the disk, and moved the disk's BAR itself
    assert.ok(/PCI: init bdf=00:00\.0 id=8086:1237/.test(log) && /PCI: init bdf=00:01\.0 id=8086:7000/.test(log), `SeaBIOS log: i440FX and PIIX3; log ${log}`);
    assert.ok(/PCI: map device bdf=00:02\.0 {2}bar 0, addr [0-9a-f]+, size 00008000 \[mem\]/.test(log), `SeaBIOS log: the disk's BAR 0 assigned; log ${log}`);
    assert.ok(log.includes('pci dev 00:02.0 using modern (1.0) virtio mode'), `SeaBIOS log: modern virtio; log ${log}`);
    const map = e820FromSeabiosLog(log);
    assert.ok(map && map.length > 0, `SeaBIOS log: e820 map; log ${log}`);
    assert.equal(map[0], { base: 0n, length: 0x9fc00n, type: 1 });
    assert.ok(map.some((e) => e.base === 0xfeffc000n && e.length === 0x4000n && e.type === 2), `KVM's identity map and TSS pages reserved; ${JSON.stringify(map, (_, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`);
    const mbrLines = run.lines.filter((line) => line.startsWith('mbr: '));
    assert.equal(mbrLines, expectedMbrLines(map), context);
    assert.is(run.lines.filter((line) => line.includes('mbr:')).length, mbrLines.length, context);
  });
}

test('--bios refuses what is not a firmware image, and --bios with --kernel, in one line with exit 2', async () => {
  const odd = path.join(tmp, 'odd.bin');
  fs.writeFileSync(odd, Buffer.alloc(100_000));
  const cases: Array<[string[], RegExp]> = [
    [['--bios', odd], /^tsvmm: --bios .*odd\.bin is 100000 bytes, not a firmware image \(those are whole 64 KiB blocks.*; pass a firmware image\n$/],
    [['--bios', path.join(tmp, 'absent.bin')], /^tsvmm: cannot read firmware image .*absent\.bin: ENOENT \(no such file\)\n$/],
    [['--bios', tmp], /^tsvmm: cannot read firmware image .*: it is a directory, not a regular file/],
    [['--bios', odd, '--kernel', odd], /^tsvmm: .*"bios" and "kernel" are both set; firmware boots what it finds on the disks, so give one or the other\n$/],
    [['--debugcon', 'stdio'], /^tsvmm: --debugcon takes file:PATH or null, got "stdio"\n$/],
  ];
  for (const [args, pattern] of cases) {
    const result = await runTsvmm(args);
    assert.is(result.code, 2, explain(result));
    assert.match(result.stderr, pattern, explain(result));
  }
});

test.run();
