/*
 * stringio: string port I/O, one instruction per transfer.
 *
 *   stringio: rep outsb ok                      (one rep outsb to COM1's data port)
 *   stringio: insb xx xx ... (16 bytes)         (one rep insb from test port 0x510)
 *   stringio: insw xxxx xxxx ... (8 words)      (one rep insw from test port 0x510)
 *
 * Before the reads, one rep outsw writes the 4 words 0x1234 0x5678 0x9abc
 * 0x0000 to port 0x510. tsvmm's tests register a device there. Under QEMU,
 * 0x510 is the fw_cfg selector: the last word selects key 0 (the signature),
 * so insb reads "QEMU" then zeros (51 45 4d 55 00 ...), and 16-bit reads,
 * which fw_cfg does not accept, read as 0000.
 */
#include "guest.h"

#define TEST_PORT 0x510

static void rep_outsb(uint16_t port, const void *buf, size_t n)
{
	__asm__ volatile("rep outsb" : "+S"(buf), "+c"(n) : "d"(port) : "memory");
}

static void rep_outsw(uint16_t port, const void *buf, size_t n)
{
	__asm__ volatile("rep outsw" : "+S"(buf), "+c"(n) : "d"(port) : "memory");
}

static void rep_insb(uint16_t port, void *buf, size_t n)
{
	__asm__ volatile("rep insb" : "+D"(buf), "+c"(n) : "d"(port) : "memory");
}

static void rep_insw(uint16_t port, void *buf, size_t n)
{
	__asm__ volatile("rep insw" : "+D"(buf), "+c"(n) : "d"(port) : "memory");
}

void guest_main(void)
{
	static const char line[] = "stringio: rep outsb ok\n";
	static const uint16_t words[4] = { 0x1234, 0x5678, 0x9abc, 0x0000 };
	uint8_t bytes_in[16];
	uint16_t words_in[8];

	/* let the UART drain first so the whole line goes out as one burst */
	for (int i = 0; i < 100000 && !(inb(COM1_BASE + UART_LSR) & UART_LSR_TEMT); i++)
		cpu_relax();
	rep_outsb(COM1_BASE + UART_THR, line, sizeof(line) - 1);

	rep_outsw(TEST_PORT, words, 4);
	memset(bytes_in, 0, sizeof(bytes_in));
	memset(words_in, 0, sizeof(words_in));
	rep_insb(TEST_PORT, bytes_in, 16);
	rep_insw(TEST_PORT, words_in, 8);

	printf("stringio: insb");
	for (int i = 0; i < 16; i++)
		printf(" %02x", bytes_in[i]);
	printf("\nstringio: insw");
	for (int i = 0; i < 8; i++)
		printf(" %04x", words_in[i]);
	printf("\n");
}
