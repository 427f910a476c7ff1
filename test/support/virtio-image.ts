// The disk patterns the virtio guests (guests/common/virtio-blk.h) and their
// tests agree on: the test writes the image pattern into a raw disk image,
// virtio-blk and virtio-hostile read it, and virtio-blk writes the guest
// pattern to sectors 8-15 (poll phase), 16 (MSI-X phase) and 17 (INTx phase).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const SECTOR_SIZE = 512;
/** The image the tests hand the virtio guests: 1 MiB. */
export const IMAGE_SECTORS = 2048;
/** Sectors virtio-blk writes with the guest pattern: 8-15 by polling, 16 by MSI-X, 17 by INTx. */
export const GUEST_WRITTEN_SECTORS = [8, 9, 10, 11, 12, 13, 14, 15, 16, 17];

/** Sector `s` of the image pattern: byte i = (s*7 + i) & 0xff, except bytes 0-3 = s (le32). */
export function imageSector(s: number): Buffer {
  const b = Buffer.alloc(SECTOR_SIZE);
  for (let i = 0; i < SECTOR_SIZE; i++) b[i] = (s * 7 + i) & 0xff;
  b.writeUInt32LE(s >>> 0, 0);
  return b;
}

/** Sector `s` of the guest pattern: byte i = (s*13 + i*5 + 0x33) & 0xff, except bytes 0-3 = 0x47000000 | s (le32). */
export function guestSector(s: number): Buffer {
  const b = Buffer.alloc(SECTOR_SIZE);
  for (let i = 0; i < SECTOR_SIZE; i++) b[i] = (s * 13 + i * 5 + 0x33) & 0xff;
  b.writeUInt32LE((0x47000000 | s) >>> 0, 0);
  return b;
}

/** Writes a raw image of `sectors` sectors in the image pattern to `file`. */
export function writeImage(file: string, sectors = IMAGE_SECTORS): void {
  const image = Buffer.alloc(sectors * SECTOR_SIZE);
  for (let s = 0; s < sectors; s++) imageSector(s).copy(image, s * SECTOR_SIZE);
  fs.writeFileSync(file, image);
}

/** A new temporary directory holding `disk.img` in the image pattern; returns the image's path. */
export function makeTempImage(prefix = 'tsvmm-virtio-'): { dir: string; image: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const image = path.join(dir, 'disk.img');
  writeImage(image);
  return { dir, image };
}

/**
 * What is wrong with `file` after virtio-blk ran, as a list of sentences
 * (empty: all is well). `sectors` (default GUEST_WRITTEN_SECTORS) must hold
 * the guest pattern; every other sector of the image must still hold the
 * image pattern.
 */
export function checkImage(file: string, sectors: number[] = GUEST_WRITTEN_SECTORS): string[] {
  const image = fs.readFileSync(file);
  const problems: string[] = [];
  if (image.length % SECTOR_SIZE !== 0) problems.push(`image size ${image.length} is not a multiple of ${SECTOR_SIZE}`);
  const written = new Set(sectors);
  for (let s = 0; s < Math.floor(image.length / SECTOR_SIZE); s++) {
    const actual = image.subarray(s * SECTOR_SIZE, (s + 1) * SECTOR_SIZE);
    const guest = written.has(s);
    const expected = guest ? guestSector(s) : imageSector(s);
    if (!actual.equals(expected)) {
      const at = actual.findIndex((byte, i) => byte !== expected[i]);
      problems.push(`sector ${s} does not hold the ${guest ? 'guest' : 'image'} pattern (first difference at byte ${at}: 0x${actual[at].toString(16)}, expected 0x${expected[at].toString(16)})`);
    }
  }
  return problems;
}
