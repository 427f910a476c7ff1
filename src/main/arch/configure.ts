// configure_system for tsvmm: recognises the kernel format, loads the kernel
// (and initrd), and writes every boot table into guest memory. Pure: it sees
// only GuestMemory, so it runs the same on real guest RAM and in unit tests.
// What it returns tells the VMM how to start the boot vCPU.

import { GuestMemory } from './guest-memory';
import { writeBootParams } from './boot-params';
import { loadBzImage, BzImageLoad } from './bzimage';
import { buildCommandLine, commandLineCapacity } from './cmdline';
import { e820Map, E820Entry } from './e820';
import { loadElf, ElfLoadResult } from './elf';
import { LONG_MODE_GDT, PVH_GDT, writeBootGdt, writeBootIdt } from './gdt';
import { loadInitrd, placeInitrd } from './initrd';
import { CMDLINE_START } from '../layout';
import { PciInterruptRoute, writeMpTable } from './mptable';
import { writeIdentityPageTables } from './paging';
import { writePvhStartInfo } from './pvh';
import { rngSeedEntry, writeSetupData } from './setup-data';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

export type BootProtocolChoice = 'auto' | 'linux' | 'pvh';
export type KernelFormat = 'elf' | 'bzimage';

export class BootConfigError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('guest-image', message, options);
  }
}

export interface BootOptions {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  /** The user's part of the command line (the base line is always there). */
  cmdline?: string;
  /** Replaces BASE_COMMAND_LINE (e.g. without panic=-1); absent: the base line. */
  cmdlineBase?: string;
  cpuCount: number;
  protocol: BootProtocolChoice;
  /** Entropy for the kernel's SETUP_RNG_SEED. */
  randomBytes: (count: number) => Uint8Array;
  /** PCI INTx routes for the MP table (one per PCI device). */
  pciInterrupts?: readonly PciInterruptRoute[];
}

export interface BootPlan {
  format: KernelFormat;
  /** linux: 64-bit entry with %rsi at the zero page; pvh: 32-bit entry with %ebx at hvm_start_info. */
  protocol: 'linux' | 'pvh';
  entry: number;
  kernelStart: number;
  kernelEnd: number;
  commandLine: string;
  initrd?: { address: number; size: number };
  e820: E820Entry[];
  mpTable: { start: number; end: number };
}

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];
const BZIMAGE_MAGIC_OFFSET = 0x202;
const BZIMAGE_MAGIC = 'HdrS';

export function detectKernelFormat(image: Uint8Array): KernelFormat {
  if (image.length >= 4 && ELF_MAGIC.every((byte, i) => image[i] === byte)) return 'elf';
  const magic = String.fromCharCode(...image.subarray(BZIMAGE_MAGIC_OFFSET, BZIMAGE_MAGIC_OFFSET + 4));
  if (magic === BZIMAGE_MAGIC) return 'bzimage';
  throw new BootConfigError('the kernel is neither an ELF (vmlinux) nor a bzImage (no "HdrS" header): pass a vmlinux, a bzImage or a PVH ELF');
}

export function configureSystem(
  memory: GuestMemory,
  layout: ReadonlyArray<{ guestAddress: number; size: number }>,
  options: BootOptions,
): BootPlan {
  const format = detectKernelFormat(options.kernel);
  let elf: ElfLoadResult | undefined;
  let bz: BzImageLoad | undefined;
  if (format === 'elf') elf = loadElf(options.kernel, memory);
  else bz = loadBzImage(options.kernel, memory);
  const loaded = elf ?? bz!;

  const protocol = chooseProtocol(options.protocol, format, elf?.pvhEntry, elf?.elfClass);

  const capacity = commandLineCapacity(loaded.kernelStart, bz?.header.cmdlineSize);
  const commandLineBytes = buildCommandLine(options.cmdline, capacity, options.cmdlineBase);
  memory.write(CMDLINE_START, commandLineBytes);
  const commandLine = { address: CMDLINE_START, length: commandLineBytes.length - 1 };

  let initrd: { address: number; size: number } | undefined;
  if (options.initrd) {
    const address = placeInitrd({
      size: options.initrd.length,
      kernelEnd: loaded.kernelEnd,
      initrdAddrMax: bz?.header.initrdAddrMax,
      memoryLayout: layout,
    });
    loadInitrd(memory, options.initrd, address);
    initrd = { address, size: options.initrd.length };
  }

  const e820 = e820Map(layout);
  const mpTable = writeMpTable(memory, { cpuCount: options.cpuCount, pciInterrupts: options.pciInterrupts });
  writeBootIdt(memory);

  let entry: number;
  if (protocol === 'pvh') {
    writeBootGdt(memory, PVH_GDT);
    writePvhStartInfo(memory, {
      cmdlineAddress: CMDLINE_START,
      memoryMap: e820.map(({ address, size, type }) => ({ addr: address, size, type })),
      initrd,
    });
    entry = elf!.pvhEntry!;
  } else {
    writeBootGdt(memory, LONG_MODE_GDT);
    writeIdentityPageTables(memory);
    const setupData = writeSetupData(memory, [rngSeedEntry(options.randomBytes)]);
    writeBootParams(memory, { setupHeader: bz?.setupHeaderBytes, commandLine, initrd, setupData, e820 });
    entry = elf ? elf.entry : bz!.entry64;
  }

  return {
    format,
    protocol,
    entry,
    kernelStart: loaded.kernelStart,
    kernelEnd: loaded.kernelEnd,
    commandLine: new TextDecoder().decode(commandLineBytes.subarray(0, commandLine.length)),
    initrd,
    e820,
    mpTable,
  };
}

function chooseProtocol(choice: BootProtocolChoice, format: KernelFormat, pvhEntry: number | undefined, elfClass?: 32 | 64): 'linux' | 'pvh' {
  if (choice === 'pvh') {
    if (format !== 'elf' || pvhEntry === undefined) {
      throw new BootConfigError('--boot-protocol pvh needs an ELF kernel with a XEN_ELFNOTE_PHYS32_ENTRY note; this kernel has none: use --boot-protocol linux');
    }
    return 'pvh';
  }
  if (choice === 'linux') {
    if (elfClass === 32) {
      throw new BootConfigError('--boot-protocol linux needs a 64-bit kernel; this ELF32 kernel boots only through its PVH entry: drop --boot-protocol or use pvh');
    }
    return 'linux';
  }
  return pvhEntry !== undefined ? 'pvh' : 'linux';
}
