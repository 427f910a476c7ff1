/*
 * mmio: MMIO accesses of each width to the test device at 0xd000_0000 (a
 * 64-byte register file that tsvmm's tests register; QEMU has nothing there).
 *
 *   mmio: read8 11 read16 2233 read32 44556677 read64 8899aabbccddeeff
 *   mmio: unclaimed ffffffff
 *
 * Writes 0x11 (1 byte, offset 0), 0x2233 (2 bytes, offset 2), 0x44556677
 * (4 bytes, offset 4) and 0x8899aabbccddeeff (8 bytes, offset 8), each as one
 * access of exactly that width, reads each back the same way, then reads 4
 * bytes at 0xd010_0000, where no device is (tsvmm returns all ones).
 */
#include "guest.h"

#define TEST_MMIO_BASE 0xd0000000UL
#define UNCLAIMED_MMIO 0xd0100000UL

void guest_main(void)
{
	mmio_write8(TEST_MMIO_BASE + 0, 0x11);
	mmio_write16(TEST_MMIO_BASE + 2, 0x2233);
	mmio_write32(TEST_MMIO_BASE + 4, 0x44556677);
	mmio_write64(TEST_MMIO_BASE + 8, 0x8899aabbccddeeffULL);
	uint8_t r8 = mmio_read8(TEST_MMIO_BASE + 0);
	uint16_t r16 = mmio_read16(TEST_MMIO_BASE + 2);
	uint32_t r32 = mmio_read32(TEST_MMIO_BASE + 4);
	uint64_t r64 = mmio_read64(TEST_MMIO_BASE + 8);
	printf("mmio: read8 %02x read16 %04x read32 %08x read64 %016lx\n", r8, r16, r32, r64);
	printf("mmio: unclaimed %08x\n", mmio_read32(UNCLAIMED_MMIO));
}
