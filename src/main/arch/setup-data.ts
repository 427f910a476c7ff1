// The setup_data chain: extra boot data the kernel finds through the zero
// page's setup_data pointer, one linked node per item (boot.rst "setup_data").
// Written into [SETUP_DATA_START, SETUP_DATA_END) the way crosvm's
// write_setup_data does.

import { GuestMemory, hex } from './guest-memory';
import { SETUP_DATA_END, SETUP_DATA_START } from '../layout';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

/** setup_data type 9: a random seed the kernel mixes into its RNG early (bootparam.h). */
export const SETUP_RNG_SEED = 9;
/** Bytes of seed passed: 256 bits, what the kernel's RNG needs to be fully seeded. */
export const RNG_SEED_BYTES = 32;

/** struct setup_data header offsets (bootparam.h): next u64, type u32, len u32, then the data. */
const SETUP_DATA = {
  next: 0, // u64, guest address of the next node, 0 ends the list
  type: 8, // u32
  len: 12, // u32, bytes of data
  data: 16,
} as const;
/** Nodes start on 8-byte boundaries so the kernel's u64 `next` reads are aligned. */
const NODE_ALIGNMENT = 8;
/** The header's len field is a u32. */
const MAX_DATA_BYTES = 0xffff_ffff;

export interface SetupDataEntry {
  type: number;
  data: Uint8Array;
}

export class SetupDataError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('guest-image', message, options);
  }
}

/** Writes the chain in order and returns the first node's address, or 0 when there are no entries. */
export function writeSetupData(mem: GuestMemory, entries: readonly SetupDataEntry[]): number {
  const addresses: number[] = [];
  let next = alignUp(SETUP_DATA_START, NODE_ALIGNMENT);
  for (const entry of entries) {
    if (entry.data.length > MAX_DATA_BYTES) throw new SetupDataError(`setup_data of type ${entry.type} has ${entry.data.length} bytes, more than its u32 len field holds`);
    const end = next + SETUP_DATA.data + entry.data.length;
    if (end > SETUP_DATA_END) {
      throw new SetupDataError(
        `setup_data entries need ${hex(end - SETUP_DATA_START)} bytes but ${hex(SETUP_DATA_START)}..${hex(SETUP_DATA_END)} holds ${hex(SETUP_DATA_END - SETUP_DATA_START)}; pass less setup data`,
      );
    }
    addresses.push(next);
    next = alignUp(end, NODE_ALIGNMENT);
  }
  if (addresses.length > 0 && !mem.contains(addresses[0], next - addresses[0])) {
    throw new SetupDataError(`setup_data area ${hex(addresses[0])}..${hex(next)} is not inside guest RAM; the guest needs RAM from address 0`);
  }
  entries.forEach((entry, index) => {
    const at = addresses[index];
    mem.writeU64(at + SETUP_DATA.next, addresses[index + 1] ?? 0);
    mem.writeU32(at + SETUP_DATA.type, entry.type);
    mem.writeU32(at + SETUP_DATA.len, entry.data.length);
    mem.write(at + SETUP_DATA.data, entry.data);
  });
  return addresses[0] ?? 0;
}

/** A SETUP_RNG_SEED entry of RNG_SEED_BYTES from the injected source (crypto.randomBytes in the VMM). */
export function rngSeedEntry(randomBytes: (count: number) => Uint8Array): SetupDataEntry {
  const data = randomBytes(RNG_SEED_BYTES);
  if (data.length !== RNG_SEED_BYTES) throw new SetupDataError(`the random source gave ${data.length} bytes for the RNG seed, ${RNG_SEED_BYTES} were asked for`);
  return { type: SETUP_RNG_SEED, data: Uint8Array.from(data) };
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
