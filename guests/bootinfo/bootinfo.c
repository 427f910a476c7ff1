/*
 * bootinfo: prints on COM1 everything the VMM handed the guest at boot, read
 * the way Linux reads it, so a test can compare it with what the VMM meant
 * to write. Deterministic: nothing random (the RNG seed bytes) is printed.
 *
 * Linux 64-bit entry (boot_protocol 1, %rsi saved by start.S in
 * boot_zero_page): the zero page (struct boot_params, bootparam.h): the
 * setup header fields, the command line, the initrd, the e820 table and the
 * setup_data chain.
 * PVH entry (boot_protocol 2, %ebx saved in boot_start_info): struct
 * hvm_start_info (Xen start_info.h): its fields, the command line, the
 * modules and the memory map.
 * Both: the MP table, found the way Linux's default_find_smp_config
 * (arch/x86/kernel/mpparse.c) finds it: the first KiB of memory, the last
 * KiB of base memory (639 KiB), the BIOS ROM 0xf0000-0xfffff, then the EBDA
 * whose segment is the BDA word at 0x40e.
 *
 * Output (every line starts with "bootinfo: "; numbers are fixed-width
 * lowercase hex with 0x, or decimal where they count something):
 *   protocol linux zero_page 0x0000000000007000
 *   hdr boot_flag aa55 header 53726448 version 020f type_of_loader ff loadflags 01
 *   hdr kernel_alignment 0x01000000 cmd_line_ptr 0x0000000000020000 cmdline_size 38
 *   cmdline "<text>"
 *   ramdisk none | ramdisk image 0x... size <n> first xx xx xx xx last xx xx xx xx
 *   e820 <n> entries
 *   e820 <i>: 0x<start16>-0x<last16> type <t>
 *   setup_data 0x<addr16> type <t> len <n>   (one per node) / setup_data none
 *   setup_data end <n> nodes
 * or, through PVH:
 *   protocol pvh start_info 0x...
 *   pvh magic 336ec578 version <v> flags <f> nr_modules <n> rsdp_paddr 0x...
 *   pvh modlist_paddr 0x... cmdline_paddr 0x... memmap_paddr 0x... memmap_entries <n>
 *   cmdline "<text>"
 *   module <i>: paddr 0x... size <n> first .. last ..
 *   memmap <i>: 0x<start16>-0x<last16> type <t>
 * then the MP table (see print_mp_table) and "bootinfo: done".
 */
#include "guest.h"

/* ---- struct boot_params / setup_header offsets (bootparam.h, zero-page.rst, boot.rst) ---- */
#define BP_EXT_RAMDISK_IMAGE 0x0c0	/* u32, high half of ramdisk_image */
#define BP_EXT_RAMDISK_SIZE 0x0c4	/* u32, high half of ramdisk_size */
#define BP_EXT_CMD_LINE_PTR 0x0c8	/* u32, high half of cmd_line_ptr */
#define BP_E820_ENTRIES 0x1e8		/* u8 */
#define BP_E820_TABLE 0x2d0		/* struct boot_e820_entry[128], 20 bytes each, packed */
#define HDR_BOOT_FLAG 0x1fe		/* u16 */
#define HDR_HEADER 0x202		/* u32 "HdrS" */
#define HDR_VERSION 0x206		/* u16 */
#define HDR_TYPE_OF_LOADER 0x210	/* u8 */
#define HDR_LOADFLAGS 0x211		/* u8 */
#define HDR_RAMDISK_IMAGE 0x218		/* u32 */
#define HDR_RAMDISK_SIZE 0x21c		/* u32 */
#define HDR_CMD_LINE_PTR 0x228		/* u32 */
#define HDR_KERNEL_ALIGNMENT 0x230	/* u32 */
#define HDR_CMDLINE_SIZE 0x238		/* u32 */
#define HDR_SETUP_DATA 0x250		/* u64, first struct setup_data */
#define E820_ENTRY_BYTES 20
#define E820_MAX_ENTRIES 128
/* struct setup_data: u64 next, u32 type, u32 len, data[len]. */
#define SD_NEXT 0
#define SD_TYPE 8
#define SD_LEN 12
#define MAX_SETUP_DATA_NODES 32

/* ---- struct hvm_start_info and friends (Xen include/public/arch-x86/hvm/start_info.h) ---- */
#define HVM_MAGIC 0
#define HVM_VERSION 4
#define HVM_FLAGS 8
#define HVM_NR_MODULES 12
#define HVM_MODLIST_PADDR 16
#define HVM_CMDLINE_PADDR 24
#define HVM_RSDP_PADDR 32
#define HVM_MEMMAP_PADDR 40
#define HVM_MEMMAP_ENTRIES 48
#define HVM_START_MAGIC_VALUE 0x336ec578
#define MODLIST_ENTRY_BYTES 32		/* u64 paddr, u64 size, u64 cmdline_paddr, u64 reserved */
#define MEMMAP_ENTRY_BYTES 24		/* u64 addr, u64 size, u32 type, u32 reserved */
#define MAX_PRINTED_MODULES 16
#define MAX_PRINTED_MEMMAP 256

/* ---- MP Spec 1.4 (mpspec_def.h) ---- */
#define MPF_SIGNATURE 0x5f504d5f	/* "_MP_" as a little-endian u32 */
#define MPF_PHYSPTR 4			/* u32 */
#define MPF_LENGTH 8			/* u8, in 16-byte paragraphs */
#define MPF_SPECIFICATION 9		/* u8, 1 or 4 */
#define MPF_FEATURE1 11			/* u8, nonzero: a default configuration, no table */
#define MPC_SIGNATURE 0x504d4350	/* "PCMP" */
#define MPC_LENGTH 4			/* u16, base table bytes */
#define MPC_SPEC 6			/* u8 */
#define MPC_OEM 8			/* char[8] */
#define MPC_PRODUCT 16			/* char[12] */
#define MPC_OEMCOUNT 34			/* u16, entries */
#define MPC_LAPIC 36			/* u32 */
#define MPC_EXT_LENGTH 40		/* u16 */
#define MPC_EXT_CHECKSUM 42		/* u8 */
#define MPC_HEADER_BYTES 44
#define MP_PROCESSOR 0			/* 20-byte entry */
#define MP_BUS 1			/* 8-byte entries from here on */
#define MP_IOAPIC 2
#define MP_INTSRC 3
#define MP_LINTSRC 4
#define CPU_ENABLED 0x01
#define CPU_BOOTPROCESSOR 0x02
#define BDA_EBDA_SEGMENT 0x40e		/* u16 in the BIOS data area: the EBDA's real-mode segment */

/* The firmware's pointers are plain numbers; this keeps gcc from reasoning about address 0. */
static inline const volatile uint8_t *phys(uint64_t address)
{
	const volatile uint8_t *p = (const volatile uint8_t *)(uintptr_t)address;
	__asm__("" : "+r"(p));
	return p;
}
static uint8_t rd8(uint64_t a) { return *phys(a); }
static uint16_t rd16(uint64_t a) { return (uint16_t)(rd8(a) | rd8(a + 1) << 8); }
static uint32_t rd32(uint64_t a) { return rd16(a) | (uint32_t)rd16(a + 2) << 16; }
static uint64_t rd64(uint64_t a) { return rd32(a) | (uint64_t)rd32(a + 4) << 32; }

/* Everything below 4 GiB is identity-mapped by the runtime; nothing above is. */
#define MAPPED_END 0x100000000ULL

static void print_string_at(uint64_t address, size_t max)
{
	printf("\"");
	for (size_t i = 0; i < max; i++) {
		uint8_t c = rd8(address + i);
		if (c == 0)
			break;
		if (c < 0x20 || c > 0x7e)
			printf("\\x%02x", c);
		else
			serial_putc((char)c);
	}
	printf("\"\n");
}

/* "cmdline "<text>"", or why it cannot be read. Linux reads at most cmdline_size (2048 here) bytes. */
static void print_cmdline(uint64_t address)
{
	printf("bootinfo: cmdline ");
	if (address == 0)
		printf("(none)\n");
	else if (address >= MAPPED_END)
		printf("(above 4 GiB)\n");
	else
		print_string_at(address, 4096);
}

/* " first xx xx xx xx last xx xx xx xx" for a blob of at least 4 bytes. */
static void print_blob_ends(uint64_t address, uint64_t size)
{
	if (size < 4 || address + size > MAPPED_END) {
		printf(" (not readable)\n");
		return;
	}
	printf(" first %02x %02x %02x %02x last %02x %02x %02x %02x\n",
	       rd8(address), rd8(address + 1), rd8(address + 2), rd8(address + 3),
	       rd8(address + size - 4), rd8(address + size - 3), rd8(address + size - 2), rd8(address + size - 1));
}

static void print_range(const char *label, unsigned index, uint64_t address, uint64_t size, uint32_t type)
{
	printf("bootinfo: %s %u: 0x%016llx-0x%016llx type %u\n", label, index,
	       (unsigned long long)address, (unsigned long long)(address + size - 1), type);
}

static void print_zero_page(uint64_t zp)
{
	printf("bootinfo: protocol linux zero_page 0x%016llx\n", (unsigned long long)zp);
	printf("bootinfo: hdr boot_flag %04x header %08x version %04x type_of_loader %02x loadflags %02x\n",
	       rd16(zp + HDR_BOOT_FLAG), rd32(zp + HDR_HEADER), rd16(zp + HDR_VERSION),
	       rd8(zp + HDR_TYPE_OF_LOADER), rd8(zp + HDR_LOADFLAGS));
	uint64_t cmdline = rd32(zp + HDR_CMD_LINE_PTR) | (uint64_t)rd32(zp + BP_EXT_CMD_LINE_PTR) << 32;
	printf("bootinfo: hdr kernel_alignment 0x%08x cmd_line_ptr 0x%016llx cmdline_size %u\n",
	       rd32(zp + HDR_KERNEL_ALIGNMENT), (unsigned long long)cmdline, rd32(zp + HDR_CMDLINE_SIZE));
	print_cmdline(cmdline);

	uint64_t image = rd32(zp + HDR_RAMDISK_IMAGE) | (uint64_t)rd32(zp + BP_EXT_RAMDISK_IMAGE) << 32;
	uint64_t size = rd32(zp + HDR_RAMDISK_SIZE) | (uint64_t)rd32(zp + BP_EXT_RAMDISK_SIZE) << 32;
	if (image == 0 && size == 0) {
		printf("bootinfo: ramdisk none\n");
	} else {
		printf("bootinfo: ramdisk image 0x%016llx size %llu", (unsigned long long)image, (unsigned long long)size);
		print_blob_ends(image, size);
	}

	unsigned count = rd8(zp + BP_E820_ENTRIES);
	printf("bootinfo: e820 %u entries\n", count);
	if (count > E820_MAX_ENTRIES)
		count = E820_MAX_ENTRIES;	/* Linux clamps the same way */
	for (unsigned i = 0; i < count; i++) {
		uint64_t at = zp + BP_E820_TABLE + (uint64_t)i * E820_ENTRY_BYTES;
		print_range("e820", i, rd64(at), rd64(at + 8), rd32(at + 16));
	}

	unsigned nodes = 0;
	uint64_t node = rd64(zp + HDR_SETUP_DATA);
	if (node == 0)
		printf("bootinfo: setup_data none\n");
	while (node != 0 && nodes < MAX_SETUP_DATA_NODES) {
		if (node >= MAPPED_END) {
			printf("bootinfo: setup_data 0x%016llx (above 4 GiB)\n", (unsigned long long)node);
			break;
		}
		printf("bootinfo: setup_data 0x%016llx type %u len %u\n", (unsigned long long)node,
		       rd32(node + SD_TYPE), rd32(node + SD_LEN));
		nodes++;
		node = rd64(node + SD_NEXT);
	}
	printf("bootinfo: setup_data end %u nodes\n", nodes);
}

static void print_start_info(uint64_t si)
{
	printf("bootinfo: protocol pvh start_info 0x%016llx\n", (unsigned long long)si);
	uint32_t magic = rd32(si + HVM_MAGIC), version = rd32(si + HVM_VERSION);
	printf("bootinfo: pvh magic %08x version %u flags %08x nr_modules %u rsdp_paddr 0x%016llx\n",
	       magic, version, rd32(si + HVM_FLAGS), rd32(si + HVM_NR_MODULES),
	       (unsigned long long)rd64(si + HVM_RSDP_PADDR));
	if (magic != HVM_START_MAGIC_VALUE) {
		printf("bootinfo: pvh bad magic\n");
		return;
	}
	uint64_t modlist = rd64(si + HVM_MODLIST_PADDR), cmdline = rd64(si + HVM_CMDLINE_PADDR);
	uint64_t memmap = version >= 1 ? rd64(si + HVM_MEMMAP_PADDR) : 0;
	uint32_t memmap_entries = version >= 1 ? rd32(si + HVM_MEMMAP_ENTRIES) : 0;
	printf("bootinfo: pvh modlist_paddr 0x%016llx cmdline_paddr 0x%016llx memmap_paddr 0x%016llx memmap_entries %u\n",
	       (unsigned long long)modlist, (unsigned long long)cmdline, (unsigned long long)memmap, memmap_entries);
	print_cmdline(cmdline);

	uint32_t modules = rd32(si + HVM_NR_MODULES);
	if (modules > MAX_PRINTED_MODULES)
		modules = MAX_PRINTED_MODULES;
	for (uint32_t i = 0; i < modules && modlist < MAPPED_END; i++) {
		uint64_t at = modlist + (uint64_t)i * MODLIST_ENTRY_BYTES;
		uint64_t paddr = rd64(at), size = rd64(at + 8);
		printf("bootinfo: module %u: paddr 0x%016llx size %llu", i, (unsigned long long)paddr, (unsigned long long)size);
		print_blob_ends(paddr, size);
	}
	if (memmap_entries > MAX_PRINTED_MEMMAP)
		memmap_entries = MAX_PRINTED_MEMMAP;
	for (uint32_t i = 0; i < memmap_entries && memmap < MAPPED_END; i++) {
		uint64_t at = memmap + (uint64_t)i * MEMMAP_ENTRY_BYTES;
		print_range("memmap", i, rd64(at), rd64(at + 8), rd32(at + 16));
	}
}

/* Sum of 'length' bytes at 'address', mod 256: a valid MP structure sums to 0. */
static uint8_t checksum(uint64_t address, uint32_t length)
{
	uint8_t sum = 0;
	for (uint32_t i = 0; i < length; i++)
		sum = (uint8_t)(sum + rd8(address + i));
	return sum;
}

/*
 * smp_scan_config(): a 16-byte aligned "_MP_" of length 1 whose 16 bytes sum
 * to 0 and whose revision is 1 or 4. Returns its address or 0.
 */
static uint64_t scan_mp(uint64_t base, uint32_t length)
{
	for (uint64_t at = base; at + 16 <= base + length; at += 16) {
		if (rd32(at) == MPF_SIGNATURE && rd8(at + MPF_LENGTH) == 1 && checksum(at, 16) == 0 &&
		    (rd8(at + MPF_SPECIFICATION) == 1 || rd8(at + MPF_SPECIFICATION) == 4))
			return at;
	}
	return 0;
}

static void print_ascii(uint64_t address, unsigned length)
{
	serial_putc('"');
	for (unsigned i = 0; i < length; i++) {
		uint8_t c = rd8(address + i);
		serial_putc(c >= 0x20 && c <= 0x7e ? (char)c : '?');
	}
	serial_putc('"');
}

/*
 * bootinfo: mp floating pointer 0x... found in <region> spec 1.<n> feature1 xx checksum ok
 * bootinfo: mp table 0x... length <n> spec 1.<n> checksum ok oem "<8>" product "<12>" entries <n> lapic 0x...
 * bootinfo: mp cpu apic <id> version <xx> enabled|disabled [bsp]
 * bootinfo: mp bus <id> "<6>"
 * bootinfo: mp ioapic id <id> version <xx> flags <xx> address 0x...
 * bootinfo: mp intsrc type <t> flags <xxxx> bus <b> irq <i> apic <a> pin <p>
 * bootinfo: mp lintsrc type <t> flags <xxxx> bus <b> irq <i> apic <a> lint <l>
 * bootinfo: mp counts processors <n> buses <n> ioapics <n> intsrc <n> lintsrc <n>
 */
static void print_mp_table(void)
{
	static const struct { const char *name; uint64_t base; uint32_t length; } regions[] = {
		{ "first KiB", 0x0, 0x400 },
		{ "base memory top", 639 * 0x400, 0x400 },
		{ "bios rom", 0xf0000, 0x10000 },
	};
	uint64_t mpf = 0;
	const char *where = "";
	for (unsigned i = 0; i < sizeof(regions) / sizeof(regions[0]) && mpf == 0; i++) {
		mpf = scan_mp(regions[i].base, regions[i].length);
		where = regions[i].name;
	}
	if (mpf == 0) {
		uint64_t ebda = (uint64_t)rd16(BDA_EBDA_SEGMENT) << 4;
		if (ebda != 0) {
			mpf = scan_mp(ebda, 0x400);
			where = "ebda";
		}
	}
	if (mpf == 0) {
		printf("bootinfo: mp none\n");
		return;
	}
	printf("bootinfo: mp floating pointer 0x%08llx found in %s spec 1.%u feature1 %02x checksum %s\n",
	       (unsigned long long)mpf, where, rd8(mpf + MPF_SPECIFICATION), rd8(mpf + MPF_FEATURE1),
	       checksum(mpf, 16 * rd8(mpf + MPF_LENGTH)) == 0 ? "ok" : "bad");
	uint64_t mpc = rd32(mpf + MPF_PHYSPTR);
	if (mpc == 0 || rd32(mpc) != MPC_SIGNATURE) {
		printf("bootinfo: mp table 0x%08llx has no PCMP signature\n", (unsigned long long)mpc);
		return;
	}
	uint32_t length = rd16(mpc + MPC_LENGTH);
	unsigned entries = rd16(mpc + MPC_OEMCOUNT);
	printf("bootinfo: mp table 0x%08llx length %u spec 1.%u checksum %s oem ", (unsigned long long)mpc, length,
	       rd8(mpc + MPC_SPEC), checksum(mpc, length) == 0 ? "ok" : "bad");
	print_ascii(mpc + MPC_OEM, 8);
	printf(" product ");
	print_ascii(mpc + MPC_PRODUCT, 12);
	printf(" entries %u lapic 0x%08x\n", entries, rd32(mpc + MPC_LAPIC));
	uint32_t ext_length = rd16(mpc + MPC_EXT_LENGTH);
	if (ext_length != 0)
		printf("bootinfo: mp extended table length %u checksum %s\n", ext_length,
		       (uint8_t)(checksum(mpc + length, ext_length) + rd8(mpc + MPC_EXT_CHECKSUM)) == 0 ? "ok" : "bad");

	unsigned counts[5] = { 0 };
	uint64_t at = mpc + MPC_HEADER_BYTES, end = mpc + length;
	/* Walk by length as Linux's smp_read_mpc does; an unknown type ends the walk. */
	for (unsigned i = 0; i < entries && at < end; i++) {
		uint8_t type = rd8(at);
		switch (type) {
		case MP_PROCESSOR: {
			uint8_t flags = rd8(at + 3);
			printf("bootinfo: mp cpu apic %u version %02x %s%s\n", rd8(at + 1), rd8(at + 2),
			       flags & CPU_ENABLED ? "enabled" : "disabled", flags & CPU_BOOTPROCESSOR ? " bsp" : "");
			at += 20;
			break;
		}
		case MP_BUS:
			printf("bootinfo: mp bus %u ", rd8(at + 1));
			print_ascii(at + 2, 6);
			printf("\n");
			at += 8;
			break;
		case MP_IOAPIC:
			printf("bootinfo: mp ioapic id %u version %02x flags %02x address 0x%08x\n", rd8(at + 1), rd8(at + 2),
			       rd8(at + 3), rd32(at + 4));
			at += 8;
			break;
		case MP_INTSRC:
		case MP_LINTSRC:
			printf("bootinfo: mp %s type %u flags %04x bus %u irq %u apic %u %s %u\n",
			       type == MP_INTSRC ? "intsrc" : "lintsrc", rd8(at + 1), rd16(at + 2), rd8(at + 4), rd8(at + 5),
			       rd8(at + 6), type == MP_INTSRC ? "pin" : "lint", rd8(at + 7));
			at += 8;
			break;
		default:
			printf("bootinfo: mp unknown entry type %u at 0x%08llx\n", type, (unsigned long long)at);
			at = end;
			continue;
		}
		counts[type]++;
	}
	printf("bootinfo: mp counts processors %u buses %u ioapics %u intsrc %u lintsrc %u\n",
	       counts[MP_PROCESSOR], counts[MP_BUS], counts[MP_IOAPIC], counts[MP_INTSRC], counts[MP_LINTSRC]);
}

void guest_main(void)
{
	if (boot_protocol == 1)
		print_zero_page(boot_zero_page);
	else if (boot_protocol == 2)
		print_start_info(boot_start_info);
	else
		printf("bootinfo: unknown entry %u\n", boot_protocol);
	print_mp_table();
	printf("bootinfo: done\n");
}
