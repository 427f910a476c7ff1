// Debian's GRUB under tsvmm, booted by Debian's SeaBIOS from a virtio-blk disk
// (grub.img from scripts/make-disk-images.sh, the image qemu-firmware.test.ts
// boots under QEMU): GRUB's core.img is read through INT 13h, runs grub.cfg
// from its FAT partition (a marker, `cat /hello.txt`) and reboots, which
// SeaBIOS turns into a hard reset through port 0xcf9. About two minutes here:
// most of it is core.img's decompression, and guest code is slow under PVM.
// Not checked, with the reason printed: without SeaBIOS, or when grub.img
// cannot be built (grub-pc-bin, mtools or dosfstools missing).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MAIN } from '../support/tsvmm';
import { SEABIOS_BIN, checkGrubBoot, firmwareTsvmmArgs, makeDiskImage, runFirmware } from '../support/firmware';

const GRUB_TIMEOUT_MS = 280_000; // ~130 s here

test('grub.img: SeaBIOS on tsvmm boots Debian GRUB, which runs grub.cfg from the FAT partition, cats /hello.txt and reboots through port 0xcf9', async () => {
  if (!fs.existsSync(SEABIOS_BIN)) {
    console.log(`not checked: ${SEABIOS_BIN} is missing (npm run setup, or apt-get install seabios)`);
    return;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-firmware-grub-'));
  try {
    const grub = makeDiskImage(tmp, 'grub');
    if (!grub.image) {
      console.log(`not checked: grub.img not built: ${grub.reason}`);
      return;
    }
    const debugLog = path.join(tmp, 'grub-seabios.log');
    const args = [MAIN, ...firmwareTsvmmArgs(grub.image, { debugLog })];
    const run = await runFirmware(process.execPath, args, GRUB_TIMEOUT_MS);
    const log = fs.existsSync(debugLog) ? fs.readFileSync(debugLog, 'latin1') : '';
    console.log(`  grub.img: tsvmm exited after ${(run.ms / 1000).toFixed(1)} s`);
    const context = `node ${args.join(' ')}: COM1 ${JSON.stringify(run.output)}, stderr ${JSON.stringify(run.stderr)}`;
    assert.not.ok(run.timedOut, `still running after ${GRUB_TIMEOUT_MS} ms; ${context}`);
    assert.is(run.status, 0, `exit status (a reset); ${context}`);
    checkGrubBoot(run, log, context);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
