// The fw_cfg model against QEMU's interface. Facts taken from QEMU's source
// are quoted next to the test that checks them:
//   docs/specs/fw_cfg.rst            the documented interface
//   hw/nvram/fw_cfg.c                fw_cfg_select, fw_cfg_data_read, fw_cfg_dma_transfer,
//                                    fw_cfg_dma_mem_read/write, fw_cfg_comb_write/valid,
//                                    fw_cfg_add_file_callback, fw_cfg_reboot
//   hw/i386/fw_cfg.c                 fw_cfg_arch_create (the PC's numbered items)
//   system/physmem.c                 memory_access_size (how port accesses are cut up)
// and from SeaBIOS's client, src/fw/paravirt.c (rel-1.16.2).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FwCfg, FwCfgError, FW_CFG_PORT_COUNT } from '../../../../src/devices/firmware/fw-cfg';
import type { FwCfgState } from '../../../../src/devices/firmware/fw-cfg';
import type { DmaMemory } from '../../../../src/devices/virtio/queue';

const BASE = 0x510; // FW_CFG_IO_BASE; the ports below are offsets from it
const SELECTOR = 0x510 - BASE, DATA = 0x511 - BASE, DMA_HIGH = 0x514 - BASE, DMA_LOW = 0x518 - BASE;
const ERROR = 0x01, READ = 0x02, SKIP = 0x04, SELECT = 0x08, WRITE = 0x10;
const RAM_SIZE = 0x10_0000; // 1 MiB of fake guest RAM at 0
const ACCESS = 0x1000; // where the tests put their FWCfgDmaAccess
const BUFFER = 0x2000; // and the destination of DMA reads

/** Guest RAM [0, RAM_SIZE) and nothing else; counts every view handed out. */
class FakeMemory implements DmaMemory {
  readonly ram = new Uint8Array(RAM_SIZE);
  slices = 0;
  contains(address: number, length: number): boolean {
    return Number.isSafeInteger(address) && Number.isSafeInteger(length) && address >= 0 && length >= 0 && address + length <= RAM_SIZE;
  }
  slice(address: number, length: number): Uint8Array {
    if (!this.contains(address, length)) throw new Error(`slice outside RAM: ${address} + ${length}`);
    this.slices++;
    return this.ram.subarray(address, address + length);
  }
  be32(address: number): number {
    return new DataView(this.ram.buffer).getUint32(address);
  }
}

function be32Bytes(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value >>> 0);
  return bytes;
}

function make(withDma = true) {
  const memory = new FakeMemory();
  const fwCfg = new FwCfg({ memory, dma: withDma });
  const select = (key: number) => fwCfg.write(SELECTOR, Uint8Array.of(key & 0xff, key >> 8)); // outw: little-endian
  const readByte = () => {
    const data = new Uint8Array(1);
    fwCfg.read(DATA, data);
    return data[0];
  };
  const readBytes = (count: number) => Array.from({ length: count }, readByte);
  /** SeaBIOS's qemu_cfg_dma_transfer: the structure, then outl(cpu_to_be32(&access), 0x518). */
  const dma = (control: number, length: number, address: number, at = ACCESS, high = 0) => {
    const view = new DataView(memory.ram.buffer);
    if (at + 16 <= RAM_SIZE) {
      view.setUint32(at, control >>> 0);
      view.setUint32(at + 4, length >>> 0);
      view.setUint32(at + 8, Math.floor(address / 0x1_0000_0000));
      view.setUint32(at + 12, address >>> 0);
    }
    if (high !== 0) fwCfg.write(DMA_HIGH, be32Bytes(high));
    fwCfg.write(DMA_LOW, be32Bytes(at));
    return at + 4 <= RAM_SIZE ? memory.be32(at) : undefined;
  };
  return { memory, fwCfg, select, readByte, readBytes, dma };
}

const ascii = (bytes: number[] | Uint8Array) => String.fromCharCode(...bytes);

/** The first offset where `after` differs from `before` outside [skipFrom, skipTo), or -1 (a short message instead of a 1 MiB diff). */
function firstChange(before: Uint8Array, after: Uint8Array, skipFrom = 0, skipTo = 0): number {
  for (let i = 0; i < before.length; i++) if ((i < skipFrom || i >= skipTo) && before[i] !== after[i]) return i;
  return -1;
}

test('placement: 0x510..0x51b', () => {
  assert.is(FW_CFG_PORT_COUNT, 12);
});

test('signature byte by byte, as SeaBIOS qemu_cfg_detect reads it', () => {
  const { select, readBytes } = make();
  select(0x0000);
  assert.is(ascii(readBytes(4)), 'QEMU');
});

test('the signature is selected at reset (fw_cfg_reset selects FW_CFG_SIGNATURE)', () => {
  const { readBytes } = make();
  assert.is(ascii(readBytes(4)), 'QEMU');
});

test('reads past the end return 0 and the selector resets the offset', () => {
  // fw_cfg.rst: "After the data offset has passed the end ... any reads will return a data value of 0x00".
  const { select, readBytes } = make();
  select(0x0000);
  assert.equal(readBytes(6), [0x51, 0x45, 0x4d, 0x55, 0, 0]);
  select(0x0000);
  assert.is(ascii(readBytes(2)), 'QE');
  select(0x0000); // reselecting the same key resets too
  assert.is(ascii(readBytes(4)), 'QEMU');
});

test('the ID item: le32 with bit 0 (traditional) and bit 1 (DMA)', () => {
  const withDma = make();
  withDma.select(0x0001);
  assert.equal(withDma.readBytes(4), [0x03, 0, 0, 0]);
  const noDma = make(false);
  noDma.select(0x0001);
  assert.equal(noDma.readBytes(4), [0x01, 0, 0, 0]);
});

test('absent and out-of-range items read as 0 (fw_cfg_select: FW_CFG_INVALID; fw_cfg_data_read: value 0)', () => {
  const { fwCfg, select, readBytes } = make();
  for (const key of [0x0002, 0x0010, 0x0020, 0x3fff, 0x8000, 0x8020, 0xffff]) {
    select(key);
    assert.equal(readBytes(3), [0, 0, 0], `key ${key.toString(16)}`);
    assert.is(fwCfg.snapshot().offset, 0); // nothing to advance over
  }
});

test('the write bit 0x4000 is masked off when looking the item up (FW_CFG_ENTRY_MASK)', () => {
  const { select, readBytes } = make();
  select(0x4000);
  assert.is(ascii(readBytes(4)), 'QEMU');
});

test('the selector takes 16-bit writes only; 8-bit writes are ignored (fw_cfg_comb_write)', () => {
  const { fwCfg, select, readBytes } = make();
  fwCfg.addItem(0x0004, Uint8Array.of(0xaa, 0xbb));
  select(0x0004);
  fwCfg.write(SELECTOR, Uint8Array.of(0x00)); // size 1: the removed data write, a no-op
  fwCfg.write(DATA, Uint8Array.of(0x00));
  assert.equal(readBytes(2), [0xaa, 0xbb]);
  // A 16-bit write at 0x511 is cut at the region's end (0x512) and, unaligned, into bytes: no select.
  fwCfg.write(DATA, Uint8Array.of(0x00, 0x00));
  select(0x0004);
  fwCfg.write(DATA, Uint8Array.of(0x01, 0x00));
  assert.equal(readBytes(2), [0xaa, 0xbb]);
  // A 32-bit write at 0x510 is cut at the region's end: its low 16 bits select.
  fwCfg.write(SELECTOR, Uint8Array.of(0x00, 0x00, 0x12, 0x34));
  assert.is(ascii(readBytes(4)), 'QEMU');
});

test('8-bit reads at 0x510 read data too; wider reads are refused with 0 and do not advance', () => {
  const { fwCfg, select, readBytes } = make();
  select(0x0000);
  const byte = new Uint8Array(1);
  fwCfg.read(SELECTOR, byte); // fw_cfg_data_read ignores the address
  assert.is(byte[0], 0x51);
  const wide = new Uint8Array(2);
  fwCfg.read(SELECTOR, wide); // fw_cfg_comb_valid: reads must be 1 byte
  assert.equal(Array.from(wide), [0, 0]);
  assert.is(ascii(readBytes(3)), 'EMU');
  const word = new Uint8Array(4);
  fwCfg.read(SELECTOR, word); // cut at 0x512: [refused 16-bit][0x512, 0x513 decode nothing]
  assert.equal(Array.from(word), [0, 0, 0xff, 0xff]);
});

test('the DMA address register reads "QEMU CFG" big-endian (fw_cfg_dma_mem_read)', () => {
  const { fwCfg } = make();
  const high = new Uint8Array(4), low = new Uint8Array(4), bytes = new Uint8Array(1);
  fwCfg.read(DMA_HIGH, high);
  fwCfg.read(DMA_LOW, low);
  assert.is(ascii(high) + ascii(low), 'QEMU CFG'); // inl(0x514) == 0x554d4551: the bytes in memory order
  fwCfg.read(DMA_HIGH + 6, bytes);
  assert.is(ascii(bytes), 'F');
  const { fwCfg: noDma } = make(false);
  noDma.read(DMA_HIGH, high);
  assert.equal(Array.from(high), [0xff, 0xff, 0xff, 0xff]); // not mapped without DMA
});

test('the file directory, byte by byte: be32 count, {be32 size, be16 select, be16 0, name[56]} sorted by name', () => {
  const { fwCfg, select, readBytes } = make();
  fwCfg.addFile('etc/e820', new Uint8Array(40));
  fwCfg.addFile('bootorder', new Uint8Array(0));
  fwCfg.addFile('etc/boot-fail-wait', new Uint8Array(4));
  select(0x0019);
  const dir = readBytes(4 + 3 * 64 + 4);
  assert.equal(dir.slice(0, 4), [0, 0, 0, 3]);
  const entry = (i: number) => dir.slice(4 + i * 64, 4 + (i + 1) * 64);
  const name = (bytes: number[]) => bytes.slice(8, 64);
  const padded = (text: string) => [...Array.from(text, (c) => c.charCodeAt(0)), ...new Array<number>(56 - text.length).fill(0)];
  // strcmp order: "bootorder" < "etc/boot-fail-wait" < "etc/e820"; selectors 0x20 up in that order.
  assert.equal(entry(0).slice(0, 8), [0, 0, 0, 0, 0x00, 0x20, 0, 0]);
  assert.equal(name(entry(0)), padded('bootorder'));
  assert.equal(entry(1).slice(0, 8), [0, 0, 0, 4, 0x00, 0x21, 0, 0]);
  assert.equal(name(entry(1)), padded('etc/boot-fail-wait'));
  assert.equal(entry(2).slice(0, 8), [0, 0, 0, 40, 0x00, 0x22, 0, 0]);
  assert.equal(name(entry(2)), padded('etc/e820'));
  assert.equal(dir.slice(4 + 3 * 64), [0, 0, 0, 0]); // past the end
  assert.is(fwCfg.fileSelector('etc/e820'), 0x22);
  assert.is(fwCfg.fileSelector('nope'), undefined);
});

test('files are reached at their selectors, which follow the name order as files are added', () => {
  const { fwCfg, select, readBytes } = make();
  fwCfg.addFile('b', Uint8Array.of(2));
  assert.is(fwCfg.fileSelector('b'), 0x20);
  fwCfg.addFile('a', Uint8Array.of(1));
  fwCfg.addFile('B', Uint8Array.of(3)); // 'B' (0x42) sorts before 'a' (0x61): byte order
  assert.is(fwCfg.fileSelector('B'), 0x20);
  assert.is(fwCfg.fileSelector('a'), 0x21);
  assert.is(fwCfg.fileSelector('b'), 0x22);
  for (const [key, value] of [[0x20, 3], [0x21, 1], [0x22, 2]]) {
    select(key);
    assert.equal(readBytes(1), [value]);
  }
});

test('DMA select + read, as qemu_cfg_read_entry does, and the control word reads 0 after', () => {
  const { memory, dma } = make();
  memory.ram.fill(0xee, BUFFER, BUFFER + 16);
  assert.is(dma((0x0000 << 16) | SELECT | READ, 4, BUFFER), 0);
  assert.is(ascii(memory.ram.subarray(BUFFER, BUFFER + 4)), 'QEMU');
  assert.is(memory.ram[BUFFER + 4], 0xee); // exactly `length` bytes
  assert.is(dma((0x0001 << 16) | SELECT | READ, 4, BUFFER), 0);
  assert.equal(Array.from(memory.ram.subarray(BUFFER, BUFFER + 4)), [3, 0, 0, 0]);
});

test('DMA read continues at the offset, reads past the end zero-fill without ERROR', () => {
  const { memory, fwCfg, select, dma } = make();
  select(0x0000);
  assert.is(dma(READ, 2, BUFFER), 0);
  assert.is(ascii(memory.ram.subarray(BUFFER, BUFFER + 2)), 'QE');
  memory.ram.fill(0xee, BUFFER, BUFFER + 8);
  assert.is(dma(READ, 6, BUFFER), 0); // fw_cfg_dma_transfer: dma_memory_set(0) past the end, no ERROR
  assert.equal(Array.from(memory.ram.subarray(BUFFER, BUFFER + 7)), [0x4d, 0x55, 0, 0, 0, 0, 0xee]);
  assert.is(fwCfg.snapshot().offset, 4); // the offset stops at the item's end
});

test('DMA read of an absent item zero-fills and succeeds (QEMU does not set ERROR)', () => {
  const { memory, dma } = make();
  memory.ram.fill(0xee, BUFFER, BUFFER + 8);
  assert.is(dma((0x8000 << 16) | SELECT | READ, 8, BUFFER), 0);
  assert.equal(Array.from(memory.ram.subarray(BUFFER, BUFFER + 8)), new Array<number>(8).fill(0));
});

test('DMA skip moves the offset (qemu_cfg_skip), and stops at the end', () => {
  const { memory, fwCfg, select, readBytes, dma } = make();
  fwCfg.addFile('etc/table', Uint8Array.of(1, 2, 3, 4, 5, 6));
  const before = Uint8Array.from(memory.ram);
  assert.is(dma((0x20 << 16) | SELECT | SKIP, 3, 0xdead_0000), 0); // the address is not used
  assert.equal(readBytes(3), [4, 5, 6]);
  select(0x20);
  assert.is(dma(SKIP, 0xffff_ffff, 0), 0);
  assert.is(fwCfg.snapshot().offset, 6);
  assert.is(firstChange(before, memory.ram, ACCESS, ACCESS + 16), -1); // only the structure changed
});

test('READ wins over WRITE and SKIP; no operation bit moves nothing; unknown bits and ERROR are ignored, as QEMU does', () => {
  const { memory, fwCfg, dma } = make();
  assert.is(dma((0x0000 << 16) | SELECT | READ | WRITE | SKIP, 4, BUFFER), 0);
  assert.is(ascii(memory.ram.subarray(BUFFER, BUFFER + 4)), 'QEMU');
  memory.ram.fill(0xee, BUFFER, BUFFER + 4);
  assert.is(dma((0x0000 << 16) | SELECT | 0xffe0 | ERROR, 4, BUFFER), 0); // only SELECT acts
  assert.equal(Array.from(memory.ram.subarray(BUFFER, BUFFER + 4)), [0xee, 0xee, 0xee, 0xee]);
  assert.is(fwCfg.snapshot().offset, 0);
  assert.is(dma(0xffe0 | READ, 1, BUFFER), 0); // READ with garbage bits still reads
  assert.is(memory.ram[BUFFER], 0x51);
});

test('DMA writes are refused with ERROR (every item is read-only), a zero-length one succeeds', () => {
  const { memory, fwCfg, select, readBytes, dma } = make();
  fwCfg.addFile('etc/x', Uint8Array.of(1, 2, 3, 4));
  memory.ram.set([9, 9, 9, 9], BUFFER);
  assert.is(dma((0x20 << 16) | SELECT | WRITE, 2, BUFFER), ERROR);
  assert.is(fwCfg.snapshot().offset, 2); // QEMU advances cur_offset over the refused part
  select(0x20);
  assert.equal(readBytes(4), [1, 2, 3, 4]);
  assert.is(dma((0x0002 << 16) | SELECT | WRITE, 2, BUFFER), ERROR); // absent item: ERROR too
  assert.is(dma((0x20 << 16) | SELECT | WRITE, 0, BUFFER), 0); // the loop never runs
});

test('DMA read to a destination outside RAM: ERROR and memory left alone', () => {
  const { memory, fwCfg, dma } = make();
  fwCfg.addFile('etc/x', new Uint8Array(64).fill(0x5a));
  const before = Uint8Array.from(memory.ram);
  const cases: Array<[number, number]> = [
    [RAM_SIZE - 8, 16], // straddles the end of RAM
    [RAM_SIZE, 1],
    [BUFFER, 0xffff_ffff], // a 4 GiB length
    [2 ** 60, 4], // beyond what a JS number holds exactly
    [0xffff_ffff_ffff_f000, 4],
  ];
  for (const [address, length] of cases) {
    assert.is(dma((0x20 << 16) | SELECT | READ, length, address), ERROR, `${address} + ${length}`);
    assert.is(firstChange(before, memory.ram, ACCESS, ACCESS + 16), -1, `${address} + ${length}`);
    assert.is(fwCfg.snapshot().offset, Math.min(length, 64)); // the item part is passed over even so, as in QEMU
  }
});

test('a FWCfgDmaAccess outside RAM: ERROR where its control word is RAM, else nothing', () => {
  const { memory, fwCfg } = make();
  const view = new DataView(memory.ram.buffer);
  view.setUint32(RAM_SIZE - 8, SELECT | READ);
  view.setUint32(RAM_SIZE - 4, 4);
  view.setUint32(0, SELECT | READ); // what a wrong high half would miss
  view.setUint32(4, 4);
  view.setUint32(ACCESS, SELECT | READ);
  view.setUint32(ACCESS + 4, 4);
  const before = Uint8Array.from(memory.ram);
  // The structure's last 8 bytes are past RAM: QEMU's dma_memory_read fails, stl_be_dma(ERROR) lands.
  fwCfg.write(DMA_LOW, be32Bytes(RAM_SIZE - 8));
  assert.is(memory.be32(RAM_SIZE - 8), ERROR);
  assert.is(firstChange(before, memory.ram, RAM_SIZE - 8, RAM_SIZE - 4), -1);
  // Entirely outside RAM, or above 4 GiB through the high half: nothing is touched, nothing throws.
  const slices = memory.slices;
  const attempts: Array<[number, number]> = [[0, RAM_SIZE + 0x100], [0xffff_ffff, 0], [0x1, ACCESS], [0x1f_ffff, 0xffff_fff8]];
  for (const [high, low] of attempts) {
    assert.not.throws(() => {
      fwCfg.write(DMA_HIGH, be32Bytes(high));
      fwCfg.write(DMA_LOW, be32Bytes(low));
    });
    assert.is(fwCfg.snapshot().dmaAddressHigh, 0); // the address register is 0 after every operation
  }
  assert.is(memory.slices, slices);
  assert.is(firstChange(before, memory.ram, RAM_SIZE - 8, RAM_SIZE - 4), -1);
});

test('the DMA address: the high half is kept until the low half starts the transfer, then both are 0', () => {
  const { fwCfg } = make();
  fwCfg.write(DMA_HIGH, be32Bytes(0x12));
  assert.is(fwCfg.snapshot().dmaAddressHigh, 0x12);
  fwCfg.write(DMA_HIGH, Uint8Array.of(0, 0)); // fw_cfg_dma_mem_valid: only 32-bit halves (or 64-bit at 0x514)
  fwCfg.write(DMA_LOW + 1, Uint8Array.of(0));
  assert.is(fwCfg.snapshot().dmaAddressHigh, 0x12);
  fwCfg.write(DMA_LOW, be32Bytes(ACCESS)); // 0x12_0000_1000 is not RAM: nothing happens there
  assert.is(fwCfg.snapshot().dmaAddressHigh, 0);
});

test('a 64-bit write of the whole DMA address starts the transfer', () => {
  const { memory, fwCfg } = make();
  new DataView(memory.ram.buffer).setUint32(ACCESS, SELECT | READ);
  new DataView(memory.ram.buffer).setUint32(ACCESS + 4, 4);
  new DataView(memory.ram.buffer).setUint32(ACCESS + 12, BUFFER);
  fwCfg.write(DMA_HIGH, Uint8Array.of(0, 0, 0, 0, ...be32Bytes(ACCESS)));
  assert.is(memory.be32(ACCESS), 0);
  assert.is(ascii(memory.ram.subarray(BUFFER, BUFFER + 4)), 'QEMU');
});

test('without DMA the DMA ports do nothing', () => {
  const { memory, fwCfg, dma } = make(false);
  new DataView(memory.ram.buffer).setUint32(ACCESS, SELECT | READ);
  assert.is(dma(SELECT | READ, 4, BUFFER), SELECT | READ); // untouched
  assert.is(fwCfg.snapshot().dmaAddressHigh, 0);
});

test('the DMA destination may overlap the structure: the data lands, then the control word', () => {
  const { memory, dma } = make();
  assert.is(dma(SELECT | READ, 8, ACCESS + 4), 0);
  assert.is(ascii(memory.ram.subarray(ACCESS + 4, ACCESS + 8)), 'QEMU');
});

test('standard items: nographic, CPUs, max CPUs, NUMA, boot menu, irq0 override (little-endian)', () => {
  const { fwCfg, select, readBytes } = make();
  fwCfg.setNoGraphic(true);
  fwCfg.setCpuCount(2);
  fwCfg.setMaxCpus(0x102);
  fwCfg.setNoNuma();
  fwCfg.setBootMenu(false);
  fwCfg.setIrq0Override(true);
  const item = (key: number, count: number) => {
    select(key);
    return readBytes(count);
  };
  assert.equal(item(0x0004, 3), [1, 0, 0]);
  assert.equal(item(0x0005, 3), [2, 0, 0]);
  assert.equal(item(0x000f, 3), [0x02, 0x01, 0]);
  assert.equal(item(0x000d, 9), new Array<number>(9).fill(0));
  assert.equal(item(0x000e, 2), [0, 0]);
  assert.equal(item(0x8002, 5), [1, 0, 0, 0, 0]);
});

test('etc/e820: {le64 address, le64 length, le32 type} each, as QEMU lays out -m 128 (guests/mbr/README.md)', () => {
  const { fwCfg, select, readBytes } = make();
  fwCfg.setE820([
    { address: 0, size: 0x800_0000, type: 1 },
    { address: 0xfeff_c000, size: 0x4000, type: 2 },
    { address: 0x1_0000_0000, size: 0x2_4000_0000, type: 1 },
  ]);
  const selector = fwCfg.fileSelector('etc/e820');
  assert.ok(selector !== undefined);
  select(selector);
  const bytes = readBytes(60);
  assert.equal(bytes.slice(0, 20), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.equal(bytes.slice(20, 40), [0x00, 0xc0, 0xff, 0xfe, 0, 0, 0, 0, 0x00, 0x40, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
  assert.equal(bytes.slice(40, 60), [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 2, 0, 0, 0, 1, 0, 0, 0]);
  assert.equal(readBytes(1), [0]);
});

test('SeaBIOS qemu_early_e820 finds etc/e820 in the directory by DMA and walks it', () => {
  const { memory, fwCfg, dma } = make();
  fwCfg.setBootFailWait(-1);
  fwCfg.setE820([{ address: 0, size: 0x9fc00, type: 1 }, { address: 0x10_0000, size: 0x7f0_0000, type: 1 }]);
  fwCfg.setBootOrder([]);
  assert.is(dma((0x0019 << 16) | SELECT | READ, 4, BUFFER), 0);
  const count = memory.be32(BUFFER);
  assert.is(count, 3);
  let select = 0, size = 0;
  for (let i = 0; i < count; i++) {
    assert.is(dma(READ, 64, BUFFER), 0);
    if (ascii(memory.ram.subarray(BUFFER + 8, BUFFER + 17)) !== 'etc/e820\0') continue;
    size = memory.be32(BUFFER);
    select = new DataView(memory.ram.buffer).getUint16(BUFFER + 4);
  }
  assert.is(size, 40);
  assert.is(dma((select << 16) | SELECT | READ, size, BUFFER), 0);
  const view = new DataView(memory.ram.buffer);
  assert.is(view.getBigUint64(BUFFER + 20 + 0, true), 0x10_0000n);
  assert.is(view.getBigUint64(BUFFER + 20 + 8, true), 0x7f0_0000n);
  assert.is(view.getUint32(BUFFER + 20 + 16, true), 1);
});

test('bootorder: paths one a line, NUL-terminated; strict adds HALT; none is empty (get_boot_devices_list)', () => {
  const read = (paths: string[], strict = false) => {
    const t = make();
    t.fwCfg.setBootOrder(paths, strict);
    t.select(0x20);
    return ascii(t.readBytes(64)).replace(/\0+$/, '|');
  };
  assert.is(read(['/pci@i0cf8/scsi@2/disk@0,0', '/rom@genroms/x.bin']), '/pci@i0cf8/scsi@2/disk@0,0\n/rom@genroms/x.bin|');
  assert.is(read(['/pci@i0cf8/scsi@2'], true), '/pci@i0cf8/scsi@2\nHALT|');
  const empty = make();
  empty.fwCfg.setBootOrder([], true);
  empty.select(0x0019);
  assert.equal(empty.readBytes(8), [0, 0, 0, 1, 0, 0, 0, 0]); // listed, 0 bytes
});

test('etc/boot-fail-wait: le32 ms, -1 is 0xffffffff (fw_cfg_reboot)', () => {
  for (const [ms, bytes] of [[-1, [0xff, 0xff, 0xff, 0xff]], [5000, [0x88, 0x13, 0, 0]]] as const) {
    const t = make();
    t.fwCfg.setBootFailWait(ms);
    t.select(0x20);
    assert.equal(t.readBytes(4), [...bytes]);
  }
});

test('builder refusals are FwCfgErrors of kind usage, one line each', () => {
  const { fwCfg } = make();
  const refused = (pattern: RegExp) => (e: unknown) => e instanceof FwCfgError && e.kind === 'usage' && pattern.test(e.message) && !e.message.includes('\n');
  assert.throws(() => fwCfg.addItem(0x0000, Uint8Array.of(1)), refused(/0x0000: it is already there/));
  assert.throws(() => fwCfg.addItem(0x0019, Uint8Array.of(1)), refused(/file directory/));
  assert.throws(() => fwCfg.addItem(0x0020, Uint8Array.of(1)), refused(/add files with addFile/));
  assert.throws(() => fwCfg.addItem(0x4004, Uint8Array.of(1)), refused(/0x4004/));
  assert.throws(() => fwCfg.addItem(0x10000, Uint8Array.of(1)), refused(/0x10000/));
  assert.throws(() => fwCfg.addFile('', Uint8Array.of(1)), refused(/a name is 1\.\.55/));
  assert.throws(() => fwCfg.addFile('x'.repeat(56), Uint8Array.of(1)), refused(/a name is 1\.\.55/));
  assert.throws(() => fwCfg.addFile('caf\u00e9', Uint8Array.of(1)), refused(/printable ASCII/));
  fwCfg.addFile('x'.repeat(55), Uint8Array.of(1));
  assert.throws(() => fwCfg.addFile('x'.repeat(55), Uint8Array.of(1)), refused(/already there/));
  assert.throws(() => fwCfg.setCpuCount(0), refused(/CPU count: 0/));
  assert.throws(() => fwCfg.setMaxCpus(65536), refused(/65536/));
  assert.throws(() => fwCfg.setBootFailWait(70000), refused(/70000 ms/));
  assert.throws(() => fwCfg.setE820([{ address: -1, size: 1, type: 1 }]), refused(/entry 0/));
  assert.throws(() => fwCfg.setBootOrder(['a\nb']), refused(/one line/));
});

test('items are copies: changing the caller\'s bytes later changes nothing', () => {
  const { fwCfg, select, readBytes } = make();
  const bytes = Uint8Array.of(1, 2);
  fwCfg.addFile('f', bytes);
  bytes[0] = 9;
  select(0x20);
  assert.equal(readBytes(2), [1, 2]);
});

test('snapshot() round-trips through JSON into a fresh FwCfg with the same items', () => {
  const { fwCfg, select, readBytes } = make();
  fwCfg.addFile('etc/x', Uint8Array.of(1, 2, 3, 4));
  select(0x20);
  readBytes(2);
  fwCfg.write(DMA_HIGH, be32Bytes(0x7));
  const state = JSON.parse(JSON.stringify(fwCfg.snapshot())) as FwCfgState;
  assert.equal(state, { selector: 0x20, offset: 2, dmaAddressHigh: 7 });
  const copy = make();
  copy.fwCfg.addFile('etc/x', Uint8Array.of(1, 2, 3, 4));
  copy.fwCfg.restore(state);
  assert.equal(copy.readBytes(3), [3, 4, 0]);
  assert.is(copy.fwCfg.snapshot().dmaAddressHigh, 7);
});

test('restore() refuses a bad state in one line and changes nothing', () => {
  const { fwCfg, select, readBytes } = make();
  select(0x0000);
  readBytes(1);
  const before = fwCfg.snapshot();
  const refused = (pattern: RegExp) => (e: unknown) => e instanceof FwCfgError && pattern.test(e.message) && !e.message.includes('\n');
  assert.throws(() => fwCfg.restore({ ...before, selector: 0x10000 }), refused(/selector is 65536, not an integer 0\.\.65535/));
  assert.throws(() => fwCfg.restore({ ...before, offset: 5 }), refused(/offset is 5, past the end of item 0x0000 \(4 bytes here\)/));
  assert.throws(() => fwCfg.restore({ ...before, selector: 0x20, offset: 1 }), refused(/0 bytes here/));
  assert.throws(() => fwCfg.restore({ ...before, dmaAddressHigh: -1 }), refused(/dmaAddressHigh is -1/));
  assert.throws(() => fwCfg.restore({ selector: 0, offset: 0 } as FwCfgState), refused(/dmaAddressHigh is missing/));
  assert.throws(() => fwCfg.restore({ ...before, extra: 1 } as FwCfgState), refused(/'extra'/));
  assert.equal(fwCfg.snapshot(), before);
  assert.is(ascii(readBytes(3)), 'EMU');
});

test.run();
