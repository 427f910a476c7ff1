// What a firmware boot (--bios) needs from tsvmm instead of boot tables:
// where the image goes, whether it is one, and the RAM map and CPU counts
// the firmware reads through fw_cfg. Pure: the Machine maps and copies.
// SeaBIOS builds its own e820 map, MP table and ACPI tables from these, as
// under QEMU -M pc.

import {
  FIRMWARE_IDENTITY_MAP_ADDR, FIRMWARE_KVM_PAGES_SIZE, FIRMWARE_SIZE_UNIT, FIRST_ADDR_PAST_32BITS, ISA_BIOS_END, ISA_BIOS_MAX_SIZE, MAX_FIRMWARE_SIZE,
} from '../layout';
import type { RamRegion } from './memory-map';
import { E820_RAM, E820Entry } from './e820';
import { TsvmmError } from '../../shared/errors';

const E820_RESERVED = 2;
const KIB = 1024;

/**
 * 0xc0000-0xfffff in KVM slots of 16 KiB, the i440FX's PAM granularity (its
 * 0xf0000 segment is four of them), so each can turn read-only when the
 * firmware write-protects it.
 */
export const PAM_SEGMENTED_RAM = { guestAddress: 0xc_0000, size: 0x4_0000, granularity: 0x4000 };

/** Where the image is mapped: all of it read-only below 4 GiB, and its tail copied into RAM below 1 MiB. */
export interface FirmwarePlacement {
  /** Guest address of the read-only mapping; it ends at 4 GiB. */
  romBase: number;
  /** Guest address of the copy in RAM, ending at 1 MiB. */
  isaBase: number;
  /** Where in the image the copy starts (its last min(size, 128 KiB) bytes). */
  isaImageOffset: number;
}

/**
 * Checks that `size` bytes can be a firmware image (`name` names the file
 * in the message): whole 64 KiB blocks, at most 16 MiB. Returns where it goes.
 */
export function placeFirmware(size: number, name: string): FirmwarePlacement {
  if (size === 0 || size % FIRMWARE_SIZE_UNIT !== 0) {
    throw new TsvmmError('guest-image',
      `--bios ${name} is ${size} bytes, not a firmware image (those are whole 64 KiB blocks, such as SeaBIOS's 128 or 256 KiB bios.bin); pass a firmware image`);
  }
  if (size > MAX_FIRMWARE_SIZE) {
    throw new TsvmmError('guest-image', `--bios ${name} is ${size / KIB} KiB, more than the ${MAX_FIRMWARE_SIZE / KIB} KiB a firmware image may be; pass a firmware image`);
  }
  const isaSize = Math.min(size, ISA_BIOS_MAX_SIZE);
  return { romBase: FIRST_ADDR_PAST_32BITS - size, isaBase: ISA_BIOS_END - isaSize, isaImageOffset: size - isaSize };
}

/**
 * The RAM map fw_cfg's etc/e820 carries, as QEMU's pc machine builds it:
 * each RAM region whole (the firmware carves out its own EBDA and BIOS
 * areas below 1 MiB) and the pages KVM keeps for the real-mode identity map
 * and the TSS, reserved.
 */
export function firmwareE820(ram: readonly RamRegion[]): E820Entry[] {
  return [
    ...ram.map(({ guestAddress, size }) => ({ address: guestAddress, size, type: E820_RAM })),
    { address: FIRMWARE_IDENTITY_MAP_ADDR, size: FIRMWARE_KVM_PAGES_SIZE, type: E820_RESERVED },
  ];
}
