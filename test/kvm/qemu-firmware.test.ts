// Firmware boots under QEMU, the reference for tsvmm's: Debian's SeaBIOS boots
// the disk images of scripts/make-disk-images.sh from a virtio-blk PCI disk.
//  - mbr.img: guests/mbr prints "mbr: ..." lines on COM1 (INT 13h extensions,
//    a checked read of 16 pattern sectors, the disk size, the E820 map) and
//    resets through the i8042; QEMU exits under -no-reboot.
//  - grub.img: Debian's GRUB (grub-pc-bin) from the MBR gap runs grub.cfg from a
//    FAT16 partition: a marker line, `cat /hello.txt`, `reboot` (GRUB jumps to
//    the reset vector; SeaBIOS then makes a hard reset through port 0xcf9).
//    Most of its ~50 s here is core.img's LZMA decompression (guest code is slow).
// Not checked, with the reason printed: everything without qemu-system-x86_64 or
// SeaBIOS; grub.img when grub-pc-bin, mtools or dosfstools cannot be had.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { QEMU_MISSING, findQemu } from '../support/qemu';
import {
  type FirmwareBootOptions,
  type FirmwareRun,
  SEABIOS_BIN,
  checkGrubBoot,
  checkSeabios,
  e820FromSeabiosLog,
  expectedMbrLines,
  firmwareQemuArgs,
  makeDiskImage,
  runFirmware,
} from '../support/firmware';

const MBR_TIMEOUT_MS = 60_000; // ~5 s here
const GRUB_TIMEOUT_MS = 240_000; // ~50 s here

const qemu = findQemu();
const seabios = fs.existsSync(SEABIOS_BIN);
const skipAll = !qemu ? QEMU_MISSING : !seabios ? `not checked: ${SEABIOS_BIN} is missing (apt-get install seabios)` : undefined;
const tmp = skipAll ? '' : fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-firmware-'));

/** Boots IMAGE under QEMU, asserts QEMU exited by itself with status 0, returns COM1 and the SeaBIOS log. */
async function boot(image: string, options: FirmwareBootOptions, timeoutMs: number): Promise<{ run: FirmwareRun; log: string; context: string }> {
  const debugLog = path.join(tmp, `${path.basename(image, '.img')}-${options.cpus ?? 1}cpu-seabios.log`);
  const args = firmwareQemuArgs(image, { ...options, debugLog });
  const run = await runFirmware(qemu as string, args, timeoutMs);
  const log = fs.existsSync(debugLog) ? fs.readFileSync(debugLog, 'latin1') : '';
  console.log(`  ${path.basename(image)} -smp ${options.cpus ?? 1}: QEMU exited after ${(run.ms / 1000).toFixed(1)} s`);
  const context = `qemu ${args.join(' ')}: COM1 ${JSON.stringify(run.output)}, stderr ${JSON.stringify(run.stderr)}`;
  assert.not.ok(run.timedOut, `QEMU still running after ${timeoutMs} ms and killed; ${context}`);
  assert.is(run.status, 0, `QEMU exit status; ${context}`);
  return { run, log, context };
}

let mbrImage: string | undefined;
let grubImage: string | undefined;
let grubSkip: string | undefined;

if (skipAll) {
  test('QEMU firmware boots', () => {
    console.log(skipAll);
  });
} else {
  test.before(() => {
    const mbr = makeDiskImage(tmp, 'mbr');
    if (!mbr.image) throw new Error(`mbr.img: ${mbr.reason}`);
    mbrImage = mbr.image;
    const grub = makeDiskImage(tmp, 'grub');
    grubImage = grub.image;
    if (!grub.image) grubSkip = `not checked: grub.img not built: ${grub.reason}`;
  });
  test.after(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  for (const cpus of [1, 4]) {
    test(`mbr.img -smp ${cpus}: SeaBIOS boots guests/mbr from virtio-blk; INT 13h ext read, disk size and E820 as SeaBIOS reports`, async () => {
      const { run, log, context } = await boot(mbrImage as string, { cpus }, MBR_TIMEOUT_MS);
      checkSeabios(run, log, cpus, context);
      assert.ok(/drive 0x[0-9a-f]+: PCHS=\d+\/\d+\/\d+ translation=\w+ LCHS=\d+\/\d+\/\d+ s=2048$/m.test(log), `SeaBIOS log: a 2048-sector drive; log ${log}`);
      const map = e820FromSeabiosLog(log);
      assert.ok(map && map.length > 0, `SeaBIOS log: e820 map; log ${log}`);
      // the first 640 KiB and the RAM above 1 MiB are what -m 128 gives
      assert.equal(map[0], { base: 0n, length: 0x9fc00n, type: 1 });
      assert.ok(map.some((e) => e.base === 0x100000n && e.type === 1 && e.length > 120n << 20n && e.length < 128n << 20n), JSON.stringify(map, (_, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)));
      const mbrLines = run.lines.filter((line) => line.startsWith('mbr: '));
      assert.equal(mbrLines, expectedMbrLines(map), context);
      // and nothing of guests/mbr's is lost among SeaBIOS's lines
      assert.is(run.lines.filter((line) => line.includes('mbr:')).length, mbrLines.length, context);
    });
  }

  test('grub.img: SeaBIOS boots Debian GRUB, which runs grub.cfg from the FAT partition, cats /hello.txt and reboots', async () => {
    if (!grubImage) {
      console.log(grubSkip);
      return;
    }
    const { run, log, context } = await boot(grubImage, { cpus: 1 }, GRUB_TIMEOUT_MS);
    checkGrubBoot(run, log, context);
  });
}

test.run();
