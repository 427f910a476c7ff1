/*
 * pollread: reads COM1 by polling, with interrupts off: LSR.DR, then RBR,
 * byte by byte, until an EOT byte (0x04). Then it prints how many bytes came
 * before the EOT and their FNV-1a hash (so a lost, doubled or reordered byte
 * shows) and resets. The FIFOs are enabled and cleared first, as a driver's
 * init does.
 */
#include "guest.h"

#define UART_RBR 0
#define UART_FCR 2
#define UART_FCR_ENABLE_CLEAR 0x07	/* FIFOs on, both cleared */
#define UART_LSR_DR 0x01
#define EOT 0x04
#define FNV_OFFSET 0x811c9dc5u
#define FNV_PRIME 0x01000193u

void guest_main(void)
{
	uint32_t hash = FNV_OFFSET;
	uint64_t count = 0;

	outb(COM1_BASE + UART_FCR, UART_FCR_ENABLE_CLEAR);
	printf("pollread: ready\n");
	for (;;) {
		while (!(inb(COM1_BASE + UART_LSR) & UART_LSR_DR))
			;
		uint8_t byte = inb(COM1_BASE + UART_RBR);
		if (byte == EOT)
			break;
		hash = (hash ^ byte) * FNV_PRIME;
		count++;
	}
	printf("pollread: %lu bytes, fnv1a 0x%08x\n", (unsigned long)count, hash);
}
