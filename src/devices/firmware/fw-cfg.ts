// QEMU's firmware configuration device (fw_cfg), the I/O-port flavour of a
// PC: the selector at 0x510, the data byte at 0x511 and the DMA address
// register at 0x514..0x51b, as QEMU's docs/specs/fw_cfg.rst describes it and
// hw/nvram/fw_cfg.c implements it. SeaBIOS (src/fw/paravirt.c) reads all of
// its configuration through it: the signature and ID byte by byte, the rest
// by DMA. Items are configuration the VMM adds before the guest runs; the
// guest can only select and read them. Where QEMU's behaviour is not in the
// spec, the comments name the function of hw/nvram/fw_cfg.c it comes from.

import { BusDevice } from '../bus/bus-device';
import { DmaMemory } from '../virtio/queue';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';
import { StatefulDevice, StateFields, checkFields, integerField, loadFields, saveFields } from '../snapshot';

/** The device claims this many ports from its base (0x510): the selector/data pair, two unused ports, the 8-byte DMA address. */
export const FW_CFG_PORT_COUNT = 12;

// Port offsets from the base, and the regions QEMU maps there (fw_cfg_io_realize).
const SELECTOR_PORT = 0; // 0x510: 16-bit writes select an item
const DATA_PORT = 1; // 0x511: 8-bit reads return the next byte of the item
const CONTROL_REGION_SIZE = 2; // FW_CFG_CTL_SIZE: the selector and data ports are one 2-byte region ("fwcfg")
const DMA_PORT = 4; // 0x514: FW_CFG_IO_BASE + 4, the big-endian DMA address, high half first ("fwcfg.dma")
const DMA_REGION_SIZE = 8; // sizeof(dma_addr_t)
const DMA_LOW_HALF = 4; // 0x518: writing the low half starts the transfer
/** What a byte nobody decodes reads as (0x512, 0x513, and the DMA ports when DMA is off), like an unclaimed port. */
const UNDECODED_BYTE = 0xff;
/** What QEMU answers for an access its region refuses (unassigned_mem_read: 0), e.g. a 16-bit read of 0x510. */
const REFUSED_READ_BYTE = 0;
/** QEMU's memory core splits port accesses into pieces of at most 4 bytes (memory_access_size's default). */
const MAX_PIECE = 4;

// Selector keys (include/standard-headers/linux/qemu_fw_cfg.h).
const KEY_SIGNATURE = 0x0000; // "QEMU": the guest's presence check
const KEY_ID = 0x0001; // le32 feature bits
const KEY_NOGRAPHIC = 0x0004; // le16: non-zero makes SeaBIOS put its text console on COM1
const KEY_NB_CPUS = 0x0005; // le16: the CPUs running at boot
const KEY_NUMA = 0x000d; // le64 node count, then per-CPU and per-node words
const KEY_BOOT_MENU = 0x000e; // le16: SeaBIOS's "etc/show-boot-menu"
const KEY_MAX_CPUS = 0x000f; // le16: SeaBIOS's "etc/max-cpus" (QEMU puts the APIC ID limit here)
const KEY_FILE_DIR = 0x0019; // the file directory
const KEY_FILE_FIRST = 0x0020; // files take selectors from here, in name order
const KEY_IRQ0_OVERRIDE = 0x8002; // le32: SeaBIOS's "etc/irq0-override", ISA IRQ 0 is IOAPIC pin 2
const KEY_WRITE_CHANNEL = 0x4000; // the old write bit: QEMU masks it off when it looks an item up
const KEY_ARCH_LOCAL = 0x8000; // architecture-specific items
const KEY_ENTRY_MASK = 0x3fff; // ~(FW_CFG_WRITE_CHANNEL | FW_CFG_ARCH_LOCAL): the index of the entry
const MAX_KEY = 0xffff;

// FW_CFG_ID bits.
const ID_TRADITIONAL = 0x01; // FW_CFG_VERSION: the selector/data interface, always there
const ID_DMA = 0x02; // FW_CFG_VERSION_DMA

// FWCfgDmaAccess.control bits.
const DMA_CTL_ERROR = 0x01;
const DMA_CTL_READ = 0x02;
const DMA_CTL_SKIP = 0x04;
const DMA_CTL_SELECT = 0x08; // the upper 16 bits are a selector
const DMA_CTL_WRITE = 0x10;
const DMA_CTL_SELECTOR_SHIFT = 16;
/** struct FWCfgDmaAccess { be32 control; be32 length; be64 address; }. */
const DMA_ACCESS_SIZE = 16;
const DMA_ACCESS_LENGTH = 4;
const DMA_ACCESS_ADDRESS = 8;
/** "QEMU CFG": what the DMA address register reads as, big-endian (FW_CFG_DMA_SIGNATURE 0x51454d5520434647). */
const DMA_SIGNATURE = new TextEncoder().encode('QEMU CFG');

// The file directory (struct FWCfgFiles / FWCfgFile).
const DIR_COUNT_SIZE = 4; // be32 count
const DIR_ENTRY_SIZE = 64; // be32 size, be16 select, be16 reserved, char name[56]
const DIR_ENTRY_SELECT = 4;
const DIR_ENTRY_NAME = 8;
const MAX_FILE_PATH = 56; // FW_CFG_MAX_FILE_PATH, the NUL included
/** Files fit from 0x20 up to the highest selector, 0x3fff. */
const MAX_FILES = KEY_ENTRY_MASK - KEY_FILE_FIRST + 1;
/** QEMU asserts len < UINT32_MAX (fw_cfg_add_bytes_callback): sizes are be32 in the directory. */
const MAX_ITEM_BYTES = 0xffff_fffe;

// Standard files.
const FILE_E820 = 'etc/e820';
const FILE_BOOTORDER = 'bootorder';
const FILE_BOOT_FAIL_WAIT = 'etc/boot-fail-wait';
/** struct e820_entry { le64 address; le64 length; le32 type; } QEMU_PACKED (hw/i386/e820_memory_layout.h). */
const E820_ENTRY_SIZE = 20;
/** etc/boot-fail-wait's "never retry" (QEMU's default reboot-timeout of -1). */
const BOOT_FAIL_WAIT_NEVER = 0xffff_ffff;

const TWO_32 = 0x1_0000_0000;
/** The highest high half that keeps high * 2^32 + low an exact JS number. */
const MAX_SAFE_HIGH_HALF = Math.floor(Number.MAX_SAFE_INTEGER / TWO_32);
/** Zero fills go through views of at most this many bytes, whatever the guest asks for. */
const FILL_CHUNK = 1 << 30;

export class FwCfgError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('usage', message, options);
  }
}

export interface FwCfgOptions {
  /** Guest RAM as the DMA interface reaches it (the same object virtio devices get). */
  memory: DmaMemory;
  /** Offer the DMA interface (ID bit 1 and the ports at 0x514). Default true, as QEMU's pc machines do. */
  dma?: boolean;
}

/** One e820 entry as etc/e820 carries it (the shape of main/arch/e820.ts's E820Entry). */
export interface FwCfgE820Entry {
  address: number;
  size: number;
  /** 1 RAM, 2 reserved, ... */
  type: number;
}

/** Plain, JSON-able state of an FwCfg, for snapshots (QEMU's vmstate_fw_cfg: cur_entry, cur_offset, dma_addr). */
export interface FwCfgState {
  /** The last selector written, 0..0xffff. */
  selector: number;
  /** How far into the selected item the next read starts; never past its end. */
  offset: number;
  /** The DMA address's high half as last written (the low half starts a transfer and both go back to 0). */
  dmaAddressHigh: number;
}

const FW_CFG_FIELDS: StateFields<FwCfgState, FwCfgState> = {
  selector: integerField(0, MAX_KEY),
  offset: integerField(0, MAX_ITEM_BYTES),
  dmaAddressHigh: integerField(0, TWO_32 - 1),
};

interface FwCfgFile {
  name: string;
  /** The name's bytes, for strcmp order and the directory. */
  nameBytes: Uint8Array;
  bytes: Uint8Array;
}

function hex(value: number, digits = 4): string {
  return `0x${value.toString(16).padStart(digits, '0')}`;
}

function le16(value: number): Uint8Array {
  const bytes = new Uint8Array(2);
  new DataView(bytes.buffer).setUint16(0, value, true);
  return bytes;
}

function le32(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value, true);
  return bytes;
}

/** strcmp on the names' bytes: QEMU's order for files on machines without legacy_fw_cfg_order (fw_cfg_add_file_callback). */
function compareNames(a: Uint8Array, b: Uint8Array): number {
  const common = Math.min(a.length, b.length);
  for (let i = 0; i < common; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** high * 2^32 + low when it and `length` bytes after it are exact JS numbers, else undefined (then it is not RAM either). */
function guestAddress(high: number, low: number, length: number): number | undefined {
  if (high > MAX_SAFE_HIGH_HALF) return undefined;
  const address = high * TWO_32 + low;
  return address + length <= Number.MAX_SAFE_INTEGER ? address : undefined;
}

function beWord(data: Uint8Array): number {
  return ((data[0] << 24) | (data[1] << 16) | (data[2] << 8) | data[3]) >>> 0;
}

/**
 * The fw_cfg device. Build it, add the items (addItem, addFile and the
 * helpers for what SeaBIOS reads), put it on the I/O bus at 0x510 for
 * FW_CFG_PORT_COUNT ports. The signature, the ID and the file directory are
 * the model's own. Every item is read-only: the guest's DMA writes are
 * refused with ERROR, as QEMU refuses them for its read-only items.
 */
export class FwCfg implements BusDevice, StatefulDevice<FwCfgState> {
  readonly name = 'fw-cfg';
  private readonly memory: DmaMemory;
  private readonly dma: boolean;
  /** Numbered items by their key (0x0000..0x001f, 0x8000..0x801f); the directory is built apart. */
  private readonly items = new Map<number, Uint8Array>();
  /** Files in name order: file i has selector 0x20 + i. */
  private readonly files: FwCfgFile[] = [];
  private directory: Uint8Array = new Uint8Array(DIR_COUNT_SIZE);
  /** Everything snapshot() saves, under FW_CFG_FIELDS' names. QEMU's reset selects the signature (fw_cfg_reset). */
  private readonly regs: FwCfgState = { selector: KEY_SIGNATURE, offset: 0, dmaAddressHigh: 0 };

  constructor(options: FwCfgOptions) {
    this.memory = options.memory;
    this.dma = options.dma ?? true;
    // fw_cfg_common_realize: the signature and the ID are always there.
    this.items.set(KEY_SIGNATURE, new TextEncoder().encode('QEMU'));
    this.items.set(KEY_ID, le32(ID_TRADITIONAL | (this.dma ? ID_DMA : 0)));
  }

  // -------------------------------------------------------------------------
  // Building.

  /**
   * A numbered item: key 0x0002..0x001f except 0x0019, or 0x8000..0x801f
   * (architecture-specific). Files go through addFile.
   */
  addItem(key: number, bytes: Uint8Array): void {
    if (!Number.isInteger(key) || key < 0 || key > MAX_KEY || (key & KEY_WRITE_CHANNEL) !== 0 || (key & KEY_ENTRY_MASK) >= KEY_FILE_FIRST) {
      throw new FwCfgError(`cannot add fw_cfg item ${typeof key === 'number' ? hex(key) : String(key)}: numbered items are 0x0000..0x001f or 0x8000..0x801f; add files with addFile`);
    }
    if (key === KEY_FILE_DIR) throw new FwCfgError('cannot add fw_cfg item 0x0019: the file directory is built from the files added');
    if (this.items.has(key)) throw new FwCfgError(`cannot add fw_cfg item ${hex(key)}: it is already there`);
    this.items.set(key, this.copyOf(bytes, `item ${hex(key)}`));
  }

  /** A named file; files are listed in the directory by name and take selectors from 0x0020 up in that order. */
  addFile(name: string, bytes: Uint8Array): void {
    if (typeof name !== 'string' || name.length === 0 || name.length >= MAX_FILE_PATH || !/^[\x20-\x7e]+$/.test(name)) {
      throw new FwCfgError(`cannot add fw_cfg file ${JSON.stringify(name)}: a name is 1..${MAX_FILE_PATH - 1} printable ASCII characters`);
    }
    if (this.files.some((file) => file.name === name)) throw new FwCfgError(`cannot add fw_cfg file ${JSON.stringify(name)}: it is already there`);
    if (this.files.length >= MAX_FILES) throw new FwCfgError(`cannot add fw_cfg file ${JSON.stringify(name)}: all ${MAX_FILES} file selectors are taken`);
    const file: FwCfgFile = { name, nameBytes: new TextEncoder().encode(name), bytes: this.copyOf(bytes, `file ${JSON.stringify(name)}`) };
    let index = this.files.length;
    while (index > 0 && compareNames(file.nameBytes, this.files[index - 1].nameBytes) < 0) index--;
    this.files.splice(index, 0, file);
    this.directory = this.buildDirectory();
  }

  /** The selector file `name` has now (it changes as files that sort before it are added), or undefined. */
  fileSelector(name: string): number | undefined {
    const index = this.files.findIndex((file) => file.name === name);
    return index < 0 ? undefined : KEY_FILE_FIRST + index;
  }

  /** 0x0004: without graphics, SeaBIOS adds etc/sercon-port = 0x3f8 and runs its console on COM1. */
  setNoGraphic(noGraphic: boolean): void {
    this.addItem(KEY_NOGRAPHIC, le16(noGraphic ? 1 : 0));
  }

  /** 0x0005: the CPUs that run at boot (QEMU's boot_cpus, le16). */
  setCpuCount(cpus: number): void {
    this.addItem(KEY_NB_CPUS, le16(this.checkU16('the CPU count', cpus, 1)));
  }

  /** 0x000f: QEMU's apic_id_limit, one more than the highest APIC ID (le16); SeaBIOS's MaxCountCPUs. */
  setMaxCpus(apicIdLimit: number): void {
    this.addItem(KEY_MAX_CPUS, le16(this.checkU16('the APIC ID limit', apicIdLimit, 1)));
  }

  /**
   * 0x000d without NUMA: a le64 node count of 0. QEMU follows it with a zero
   * word per APIC ID; those read as 0 past the item's end anyway, and a
   * numbered item's length is not visible to the guest.
   */
  setNoNuma(): void {
    this.addItem(KEY_NUMA, new Uint8Array(8));
  }

  /** 0x000e: show SeaBIOS's boot menu (QEMU's -boot menu=on, le16). */
  setBootMenu(show: boolean): void {
    this.addItem(KEY_BOOT_MENU, le16(show ? 1 : 0));
  }

  /** 0x8002: ISA IRQ 0 arrives on IOAPIC pin 2 (QEMU always sets 1, le32); SeaBIOS's MP table and MADT say so. */
  setIrq0Override(override: boolean): void {
    this.addItem(KEY_IRQ0_OVERRIDE, le32(override ? 1 : 0));
  }

  /** etc/e820: the memory map SeaBIOS starts from (QEMU: RAM from 0 to the gap, RAM above 4 GiB, reserved ranges). */
  setE820(entries: readonly FwCfgE820Entry[]): void {
    const bytes = new Uint8Array(entries.length * E820_ENTRY_SIZE);
    const view = new DataView(bytes.buffer);
    entries.forEach((entry, i) => {
      const { address, size, type } = entry;
      if (!Number.isSafeInteger(address) || !Number.isSafeInteger(size) || address < 0 || size < 0 || !Number.isSafeInteger(address + size)) {
        throw new FwCfgError(`cannot build etc/e820: entry ${i} (address ${address}, size ${size}) is not a range of whole bytes`);
      }
      if (!Number.isInteger(type) || type < 0 || type >= TWO_32) throw new FwCfgError(`cannot build etc/e820: entry ${i} has type ${type}, not a 32-bit value`);
      const at = i * E820_ENTRY_SIZE;
      view.setBigUint64(at, BigInt(address), true);
      view.setBigUint64(at + 8, BigInt(size), true);
      view.setUint32(at + 16, type, true);
    });
    this.addFile(FILE_E820, bytes);
  }

  /**
   * bootorder: OpenFirmware device paths, one a line, NUL-terminated; no
   * paths is an empty file. `strict` adds QEMU's "HALT" line (-boot
   * strict=on: boot nothing else). As get_boot_devices_list builds it.
   */
  setBootOrder(paths: readonly string[], strict = false): void {
    const bad = paths.find((path) => path.length === 0 || !/^[\x20-\x7e]+$/.test(path));
    if (bad !== undefined) throw new FwCfgError(`cannot build bootorder: device path ${JSON.stringify(bad)} is not one line of printable ASCII`);
    const lines = paths.length > 0 && strict ? [...paths, 'HALT'] : paths;
    this.addFile(FILE_BOOTORDER, lines.length === 0 ? new Uint8Array(0) : new TextEncoder().encode(`${lines.join('\n')}\0`));
  }

  /**
   * etc/boot-fail-wait: how long SeaBIOS waits after "No bootable device"
   * before it reboots, in ms (le32); -1, QEMU's default, means never.
   * Without the file SeaBIOS retries after 60 s.
   */
  setBootFailWait(ms: number): void {
    if (ms !== -1 && (!Number.isInteger(ms) || ms < 0 || ms > 0xffff)) {
      throw new FwCfgError(`cannot build etc/boot-fail-wait: ${ms} ms; QEMU takes -1 (never) or 0..65535`);
    }
    this.addFile(FILE_BOOT_FAIL_WAIT, le32(ms === -1 ? BOOT_FAIL_WAIT_NEVER : ms));
  }

  // -------------------------------------------------------------------------
  // State.

  snapshot(): FwCfgState {
    return saveFields(this.regs, FW_CFG_FIELDS);
  }

  /** Puts `state` (from snapshot()) back; the items stay this FwCfg's, so the offset must fit the selected one. */
  restore(state: FwCfgState): void {
    let problem = checkFields(state, FW_CFG_FIELDS);
    if (!problem) {
      const length = this.itemAt(state.selector)?.length ?? 0;
      if (state.offset > length) problem = `offset is ${state.offset}, past the end of item ${hex(state.selector)} (${length} bytes here)`;
    }
    if (problem) throw new FwCfgError(`cannot restore fw_cfg state: ${problem}; pass a state produced by FwCfg.snapshot() with the same items`);
    loadFields(this.regs, state, FW_CFG_FIELDS);
  }

  // -------------------------------------------------------------------------
  // The guest's side.

  // QEMU's memory core (physmem.c flatview_read/write_continue) cuts a port
  // access at the end of each region and, for unaligned offsets, into
  // aligned pieces (memory_access_size); each piece then goes to the region
  // or is refused by its valid.accepts. read() and write() do the same.

  read(offset: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      const at = offset + done;
      const piece = data.subarray(done, done + this.pieceLength(at, data.length - done));
      if (at === SELECTOR_PORT || at === DATA_PORT) this.readControlRegion(piece);
      else if (at >= DMA_PORT && at < DMA_PORT + DMA_REGION_SIZE && this.dma) piece.set(DMA_SIGNATURE.subarray(at - DMA_PORT, at - DMA_PORT + piece.length));
      else piece.fill(UNDECODED_BYTE);
      done += piece.length;
    }
  }

  write(offset: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      const at = offset + done;
      const piece = data.subarray(done, done + this.pieceLength(at, data.length - done));
      if (at === SELECTOR_PORT && piece.length === 2) this.select(piece[0] | (piece[1] << 8)); // fw_cfg_comb_write: 16-bit, little-endian; 8-bit writes are the removed data writes
      else if (at >= DMA_PORT && at < DMA_PORT + DMA_REGION_SIZE && this.dma) this.writeDmaAddress(at - DMA_PORT, piece);
      done += piece.length;
    }
  }

  /** How many bytes of an access at `at` QEMU hands to one region in one go. */
  private pieceLength(at: number, remaining: number): number {
    let regionStart = at;
    let regionEnd = at + 1; // a byte outside both regions goes alone
    if (at < CONTROL_REGION_SIZE) [regionStart, regionEnd] = [0, CONTROL_REGION_SIZE];
    else if (at >= DMA_PORT && at < DMA_PORT + DMA_REGION_SIZE) [regionStart, regionEnd] = [DMA_PORT, DMA_PORT + DMA_REGION_SIZE];
    const inRegion = at - regionStart;
    const alignment = inRegion === 0 ? MAX_PIECE : inRegion & -inRegion;
    let length = Math.min(remaining, regionEnd - at, MAX_PIECE, alignment);
    while ((length & (length - 1)) !== 0) length--; // pow2floor
    return length;
  }

  /** fw_cfg_comb_valid: 8-bit reads (at 0x510 or 0x511: fw_cfg_data_read ignores which) return item bytes; wider reads are refused. */
  private readControlRegion(piece: Uint8Array): void {
    if (piece.length !== 1) {
      piece.fill(REFUSED_READ_BYTE);
      return;
    }
    const item = this.itemAt(this.regs.selector);
    piece[0] = item !== undefined && this.regs.offset < item.length ? item[this.regs.offset++] : 0;
  }

  /** fw_cfg_dma_mem_write: a 32-bit write of the high half (clears the low half), or of the low half (starts the transfer); nothing else is accepted. */
  private writeDmaAddress(at: number, piece: Uint8Array): void {
    if (piece.length !== 4) return; // fw_cfg_dma_mem_valid
    if (at === 0) this.regs.dmaAddressHigh = beWord(piece);
    else if (at === DMA_LOW_HALF) {
      const high = this.regs.dmaAddressHigh;
      this.regs.dmaAddressHigh = 0; // "The value for the register is 0 at startup and after an operation"
      this.transfer(guestAddress(high, beWord(piece), DMA_ACCESS_SIZE));
    }
  }

  /** fw_cfg_select: resets the offset. An unknown key selects nothing: reads return 0. */
  private select(key: number): void {
    this.regs.selector = key & MAX_KEY;
    this.regs.offset = 0;
  }

  /** The item `selector` reaches (QEMU looks entries up by key & FW_CFG_ENTRY_MASK, in the arch table when bit 15 is set). */
  private itemAt(selector: number): Uint8Array | undefined {
    const index = selector & KEY_ENTRY_MASK;
    if ((selector & KEY_ARCH_LOCAL) !== 0) return this.items.get(KEY_ARCH_LOCAL | index);
    if (index === KEY_FILE_DIR) return this.directory;
    if (index < KEY_FILE_FIRST) return this.items.get(index);
    return this.files[index - KEY_FILE_FIRST]?.bytes;
  }

  /**
   * One DMA operation (fw_cfg_dma_transfer) on the FWCfgDmaAccess at
   * `accessAddress`. A structure outside RAM gets ERROR written to its control
   * word if that word is RAM. READ copies from the item and zero-fills past
   * its end; SKIP moves the offset; WRITE is refused (every item is
   * read-only); a control word with none of the three moves no data and
   * succeeds. The offset moves by the part of the item covered, whether or
   * not the copy succeeds, as in QEMU. Unlike QEMU, a READ whose destination
   * is not all RAM writes nothing at all (QEMU writes the pieces that are).
   */
  private transfer(accessAddress: number | undefined): void {
    if (accessAddress === undefined) return; // not a guest-physical address tsvmm has RAM at: nothing to report to
    if (!this.memory.contains(accessAddress, DMA_ACCESS_SIZE)) {
      this.writeControl(accessAddress, DMA_CTL_ERROR);
      return;
    }
    const access = this.memory.slice(accessAddress, DMA_ACCESS_SIZE);
    const fields = new DataView(access.buffer, access.byteOffset, DMA_ACCESS_SIZE);
    const control = fields.getUint32(0);
    const requested = fields.getUint32(DMA_ACCESS_LENGTH);
    const targetHigh = fields.getUint32(DMA_ACCESS_ADDRESS);
    const targetLow = fields.getUint32(DMA_ACCESS_ADDRESS + 4);

    if ((control & DMA_CTL_SELECT) !== 0) this.select(control >>> DMA_CTL_SELECTOR_SHIFT);
    // READ wins over WRITE, WRITE over SKIP; other bits (ERROR included) are ignored.
    const operation = (control & DMA_CTL_READ) !== 0 ? 'read' : (control & DMA_CTL_WRITE) !== 0 ? 'write' : (control & DMA_CTL_SKIP) !== 0 ? 'skip' : 'none';
    const length = operation === 'none' ? 0 : requested;
    let result = 0;
    if (length > 0) {
      const item = this.itemAt(this.regs.selector);
      const start = this.regs.offset;
      const fromItem = item === undefined ? 0 : Math.min(length, Math.max(0, item.length - start));
      if (operation === 'read') {
        const target = guestAddress(targetHigh, targetLow, length);
        if (target === undefined || !this.memory.contains(target, length)) result = DMA_CTL_ERROR;
        else {
          if (item !== undefined && fromItem > 0) this.memory.slice(target, fromItem).set(item.subarray(start, start + fromItem));
          for (let done = fromItem; done < length; done += FILL_CHUNK) this.memory.slice(target + done, Math.min(FILL_CHUNK, length - done)).fill(0);
        }
      } else if (operation === 'write') {
        result = DMA_CTL_ERROR; // read-only item, or past the end / nothing selected: QEMU sets ERROR for each
      }
      this.regs.offset = start + fromItem;
    }
    this.writeControl(accessAddress, result);
  }

  /** stl_be_dma of the control word: dropped when it is not RAM. */
  private writeControl(accessAddress: number, control: number): void {
    if (!this.memory.contains(accessAddress, 4)) return;
    const word = this.memory.slice(accessAddress, 4);
    new DataView(word.buffer, word.byteOffset, 4).setUint32(0, control);
  }

  private buildDirectory(): Uint8Array {
    const bytes = new Uint8Array(DIR_COUNT_SIZE + this.files.length * DIR_ENTRY_SIZE);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, this.files.length);
    this.files.forEach((file, i) => {
      const at = DIR_COUNT_SIZE + i * DIR_ENTRY_SIZE;
      view.setUint32(at, file.bytes.length);
      view.setUint16(at + DIR_ENTRY_SELECT, KEY_FILE_FIRST + i);
      bytes.set(file.nameBytes, at + DIR_ENTRY_NAME); // the rest of name[56] stays NUL
    });
    return bytes;
  }

  private copyOf(bytes: Uint8Array, what: string): Uint8Array {
    if (!(bytes instanceof Uint8Array)) throw new FwCfgError(`cannot add fw_cfg ${what}: its contents must be a Uint8Array`);
    if (bytes.length > MAX_ITEM_BYTES) throw new FwCfgError(`cannot add fw_cfg ${what}: ${bytes.length} bytes, the most is ${MAX_ITEM_BYTES}`);
    return Uint8Array.from(bytes);
  }

  private checkU16(what: string, value: number, min: number): number {
    if (!Number.isInteger(value) || value < min || value > 0xffff) throw new FwCfgError(`cannot add fw_cfg ${what}: ${value}, it must be a whole number ${min}..65535`);
    return value;
  }
}
