/*
 * The 64-bit code of the test bzImage: proves that the loader entered
 * startup_64 (load address + 0x200) in long mode with %rsi at the zero page,
 * and that the zero page carries this image's setup header (copied from
 * offset 0x1f1 of the file) plus what the loader filled in. Prints, then
 * resets through the i8042:
 *
 *   bzimage: entered at 64-bit entry 0x0000000000100200, rsi=0x0000000000007000
 *   bzimage: setup header version 020f boot_flag aa55 header "HdrS" setup_sects 1 syssize 0x<n>
 *   bzimage: loadflags 01 xloadflags 0001 relocatable_kernel 1 min_alignment 21 kernel_alignment 0x<n>
 *   bzimage: pref_address 0x<n> init_size 0x<n> initrd_addr_max 0x<n> type_of_loader <xx>
 *   bzimage: cmd_line_ptr 0x<n> cmdline_size <n> cmdline "<text>"
 *   bzimage: ramdisk image 0x<n> size <n> | bzimage: ramdisk none
 *   bzimage: e820 <n> entries
 *   bzimage: done
 *
 * Position independent (compiled -fpie; no absolute addresses), with its own
 * tiny COM1 output: it shares nothing with guests/common, which is linked at
 * a fixed address.
 */
#include <stdint.h>

#define COM1 0x3f8
#define COM1_LSR (COM1 + 5)
#define LSR_THRE 0x20		/* transmit holding register empty */
#define LSR_TEMT 0x40		/* transmitter idle */
#define I8042_COMMAND 0x64
#define I8042_RESET 0xfe
#define POLL_LIMIT 1000000	/* every wait on the UART is bounded */

/* struct boot_params offsets (bootparam.h) */
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define HDR_SETUP_SECTS 0x1f1
#define HDR_SYSSIZE 0x1f4
#define HDR_BOOT_FLAG 0x1fe
#define HDR_HEADER 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21c
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE_KERNEL 0x234
#define HDR_MIN_ALIGNMENT 0x235
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260
#define CMDLINE_PRINT_LIMIT 4096

void bzimage_main(uint64_t entry, uint64_t boot_params);

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static inline const volatile uint8_t *at(uint64_t address)
{
	const volatile uint8_t *p = (const volatile uint8_t *)(uintptr_t)address;
	__asm__("" : "+r"(p));
	return p;
}
static uint8_t rd8(uint64_t a) { return *at(a); }
static uint16_t rd16(uint64_t a) { return (uint16_t)(rd8(a) | rd8(a + 1) << 8); }
static uint32_t rd32(uint64_t a) { return rd16(a) | (uint32_t)rd16(a + 2) << 16; }
static uint64_t rd64(uint64_t a) { return rd32(a) | (uint64_t)rd32(a + 4) << 32; }

static void wait_lsr(uint8_t bit)
{
	for (unsigned i = 0; i < POLL_LIMIT && !(inb(COM1_LSR) & bit); i++)
		__asm__ volatile("pause");
}
static void putc(char c)
{
	wait_lsr(LSR_THRE);
	outb(COM1, (uint8_t)c);
}
static void puts(const char *s)
{
	while (*s)
		putc(*s++);
}
static void hex(uint64_t v, int digits)
{
	for (int i = digits - 1; i >= 0; i--)
		putc("0123456789abcdef"[(v >> (4 * i)) & 0xf]);
}
static void hex0x(uint64_t v, int digits)
{
	puts("0x");
	hex(v, digits);
}
static void dec(uint64_t v)
{
	char buf[21];
	int n = 0;
	do {
		buf[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		putc(buf[--n]);
}
static void ascii(uint64_t address, uint64_t max)
{
	putc('"');
	for (uint64_t i = 0; i < max; i++) {
		uint8_t c = rd8(address + i);
		if (c == 0)
			break;
		putc(c >= 0x20 && c <= 0x7e ? (char)c : '?');
	}
	putc('"');
}

void bzimage_main(uint64_t entry, uint64_t bp)
{
	puts("bzimage: entered at 64-bit entry ");
	hex0x(entry, 16);
	puts(", rsi=");
	hex0x(bp, 16);
	puts("\nbzimage: setup header version ");
	hex(rd16(bp + HDR_VERSION), 4);
	puts(" boot_flag ");
	hex(rd16(bp + HDR_BOOT_FLAG), 4);
	puts(" header ");
	ascii(bp + HDR_HEADER, 4);
	puts(" setup_sects ");
	dec(rd8(bp + HDR_SETUP_SECTS));
	puts(" syssize ");
	hex0x(rd32(bp + HDR_SYSSIZE), 8);
	puts("\nbzimage: loadflags ");
	hex(rd8(bp + HDR_LOADFLAGS), 2);
	puts(" xloadflags ");
	hex(rd16(bp + HDR_XLOADFLAGS), 4);
	puts(" relocatable_kernel ");
	dec(rd8(bp + HDR_RELOCATABLE_KERNEL));
	puts(" min_alignment ");
	dec(rd8(bp + HDR_MIN_ALIGNMENT));
	puts(" kernel_alignment ");
	hex0x(rd32(bp + HDR_KERNEL_ALIGNMENT), 8);
	puts("\nbzimage: pref_address ");
	hex0x(rd64(bp + HDR_PREF_ADDRESS), 16);
	puts(" init_size ");
	hex0x(rd32(bp + HDR_INIT_SIZE), 8);
	puts(" initrd_addr_max ");
	hex0x(rd32(bp + HDR_INITRD_ADDR_MAX), 8);
	puts(" type_of_loader ");
	hex(rd8(bp + HDR_TYPE_OF_LOADER), 2);
	uint64_t cmdline = rd32(bp + HDR_CMD_LINE_PTR) | (uint64_t)rd32(bp + BP_EXT_CMD_LINE_PTR) << 32;
	puts("\nbzimage: cmd_line_ptr ");
	hex0x(cmdline, 16);
	puts(" cmdline_size ");
	dec(rd32(bp + HDR_CMDLINE_SIZE));
	puts(" cmdline ");
	if (cmdline == 0 || cmdline >= 0x40000000)	/* the loader's identity map covers 1 GiB */
		puts("(unreadable)");
	else
		ascii(cmdline, CMDLINE_PRINT_LIMIT);
	uint64_t image = rd32(bp + HDR_RAMDISK_IMAGE) | (uint64_t)rd32(bp + BP_EXT_RAMDISK_IMAGE) << 32;
	uint64_t size = rd32(bp + HDR_RAMDISK_SIZE) | (uint64_t)rd32(bp + BP_EXT_RAMDISK_SIZE) << 32;
	if (image == 0 && size == 0) {
		puts("\nbzimage: ramdisk none");
	} else {
		puts("\nbzimage: ramdisk image ");
		hex0x(image, 16);
		puts(" size ");
		dec(size);
	}
	puts("\nbzimage: e820 ");
	dec(rd8(bp + BP_E820_ENTRIES));
	puts(" entries\nbzimage: done\n");
	wait_lsr(LSR_TEMT);
	outb(I8042_COMMAND, I8042_RESET);
}
