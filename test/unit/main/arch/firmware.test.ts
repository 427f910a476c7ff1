import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { firmwareE820, placeFirmware } from '../../../../src/main/arch/firmware';
import { guestMemoryLayout } from '../../../../src/main/arch/memory-map';
import { FIRMWARE_IDENTITY_MAP_ADDR, FIRMWARE_TSS_ADDR, IOAPIC_START, LAPIC_START } from '../../../../src/main/layout';
import { TsvmmError } from '../../../../src/shared/errors';

const KIB = 1024;
const MIB = 1024 * KIB;

test('SeaBIOS\'s 128 KiB bios.bin ends at 4 GiB and is whole at 0xe0000; a 256 KiB image gives only its last 128 KiB to 0xe0000', () => {
  assert.equal(placeFirmware(128 * KIB, 'bios.bin'), { romBase: 0xfffe_0000, isaBase: 0xe_0000, isaImageOffset: 0 });
  assert.equal(placeFirmware(256 * KIB, 'bios-256k.bin'), { romBase: 0xfffc_0000, isaBase: 0xe_0000, isaImageOffset: 128 * KIB });
  assert.equal(placeFirmware(64 * KIB, 'small.bin'), { romBase: 0xffff_0000, isaBase: 0xf_0000, isaImageOffset: 0 });
  assert.equal(placeFirmware(16 * MIB, 'big.bin').romBase, 0xff00_0000);
});

test('the largest image still leaves KVM\'s identity map and TSS pages, and the APICs, below it', () => {
  const lowest = placeFirmware(16 * MIB, 'big.bin').romBase;
  assert.ok(FIRMWARE_TSS_ADDR + 3 * 0x1000 <= lowest);
  assert.is(FIRMWARE_TSS_ADDR, FIRMWARE_IDENTITY_MAP_ADDR + 0x1000);
  assert.ok(LAPIC_START + 0x1000 <= FIRMWARE_IDENTITY_MAP_ADDR && IOAPIC_START < LAPIC_START);
});

test('what is not a firmware image is one line naming the file and the rule', () => {
  const refused = (size: number, pattern: RegExp) => assert.throws(() => placeFirmware(size, 'x.bin'),
    (e: unknown) => e instanceof TsvmmError && e.kind === 'guest-image' && pattern.test(e.message) && !e.message.includes('\n'));
  refused(0, /--bios x\.bin is 0 bytes, not a firmware image \(those are whole 64 KiB blocks/);
  refused(100_000, /is 100000 bytes, not a firmware image/);
  refused(17 * MIB, /is 17408 KiB, more than the 16384 KiB a firmware image may be/);
});

test('etc/e820 as QEMU builds it: each RAM region whole, and KVM\'s four pages reserved', () => {
  assert.equal(firmwareE820(guestMemoryLayout(128 * MIB)), [
    { address: 0, size: 128 * MIB, type: 1 },
    { address: 0xfeff_c000, size: 0x4000, type: 2 },
  ]);
  const big = firmwareE820(guestMemoryLayout(4096 * MIB));
  assert.equal(big.map((e) => [e.address, e.size, e.type]), [[0, 0xd000_0000, 1], [0x1_0000_0000, 0x3000_0000, 1], [0xfeff_c000, 0x4000, 2]]);
});

test.run();
