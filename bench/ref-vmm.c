/*
 * ref-vmm: the C reference VMM of tsvmm's exit benchmarks. It boots an ELF
 * guest exactly as tsvmm's 64-bit ("linux") entry does and answers every exit
 * INLINE on the vCPU thread, so an exit costs KVM_RUN returning and being
 * called again, nothing more. That is the floor for any VMM on this machine;
 * the bench scripts quote tsvmm and QEMU as ratios against it.
 *
 *   ref-vmm [--cpus N] [--mem MiB] guest.elf
 *
 * Machine (same values as src/arch and src/main/machine.ts):
 *   - in-kernel irqchip + PIT2, TSS at 0xfffbd000, identity map at 0xfffbc000
 *   - RAM from 0 (default 128 MiB), ELF PT_LOAD segments at p_paddr
 *   - GDT at 0x500 (null, 0x08 code64, 0x10 data, 0x18 TSS), IDT at 0x520
 *   - identity page tables at 0x9000/0xa000/0xb000 for 1 GiB with 2 MiB pages
 *   - CR0 |= PE|PG, CR3 = 0x9000, CR4 |= PAE, EFER |= LME|LMA
 *   - rip = e_entry, rsp = rbp = 0x8000, rsi = 0x7000 (zero page, left empty), rflags = 2
 *   - CPUID from KVM_GET_SUPPORTED_CPUID, leaf 1 EBX = APIC id, CLFLUSH 8, count (+HTT),
 *     leaf 0xb/0x1f EDX = APIC id; boot MSRs and FPU as src/arch/msrs.ts, regs.ts
 *   - LAPIC LINT0 ExtINT, LINT1 NMI
 * Devices (inline):
 *   - COM1 0x3f8-0x3ff: THR -> stdout, LSR reads 0x60, scratch register kept, DLAB tracked
 *   - i8042: 0xfe written to 0x64 ends the VM (exit status 0)
 *   - a 64-byte register file at MMIO 0xd0000000
 *   - anything else: reads all ones, writes dropped
 * With --cpus N > 1 each vCPU runs on its own pthread and the device state is
 * behind one mutex; with one vCPU there are no threads at all.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TSS_ADDR 0xfffbd000UL
#define IDENTITY_MAP_ADDR 0xfffbc000UL
#define BOOT_GDT_START 0x500
#define BOOT_IDT_START 0x520
#define ZERO_PAGE_START 0x7000
#define BOOT_STACK_POINTER 0x8000
#define PML4_START 0x9000
#define PDPTE_START 0xa000
#define PDE_START 0xb000

#define COM1_BASE 0x3f8
#define UART_LCR 3
#define UART_LSR 5
#define UART_SCR 7
#define LCR_DLAB 0x80
#define LSR_IDLE 0x60		/* THR empty | transmitter empty */
#define I8042_COMMAND 0x64
#define I8042_RESET 0xfe
#define REGFILE_BASE 0xd0000000ULL
#define REGFILE_SIZE 64

#define MAX_CPUS 64
#define CPUID_MAX_ENTRIES 256

static void die(const char *what)
{
	fprintf(stderr, "ref-vmm: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void xioctl(int fd, unsigned long req, void *arg, const char *what)
{
	if (ioctl(fd, req, arg) < 0)
		die(what);
}

/* ---- Shared device state ---- */
static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;
static int threaded;
static uint8_t com1_lcr, com1_scr, com1_dll = 1, com1_dlm, com1_ier, com1_mcr;
static uint8_t regfile[REGFILE_SIZE];
static char outbuf[4096];
static size_t outlen;

static void flush_out(void)
{
	size_t off = 0;
	while (off < outlen) {
		ssize_t n = write(1, outbuf + off, outlen - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	outlen = 0;
}

static void put_byte(uint8_t c)
{
	outbuf[outlen++] = (char)c;
	if (c == '\n' || outlen == sizeof outbuf)
		flush_out();
}

static void end_vm(void)
{
	flush_out();
	_exit(0);
}

static void io_access(uint16_t port, int write, uint8_t *data)
{
	if (port >= COM1_BASE && port < COM1_BASE + 8) {
		unsigned off = port - COM1_BASE;
		int dlab = com1_lcr & LCR_DLAB;
		if (write) {
			switch (off) {
			case 0: if (dlab) com1_dll = *data; else put_byte(*data); break;
			case 1: if (dlab) com1_dlm = *data; else com1_ier = *data; break;
			case UART_LCR: com1_lcr = *data; break;
			case 4: com1_mcr = *data; break;
			case UART_SCR: com1_scr = *data; break;
			default: break;
			}
		} else {
			switch (off) {
			case 0: *data = dlab ? com1_dll : 0; break;
			case 1: *data = dlab ? com1_dlm : com1_ier; break;
			case 2: *data = 0x01; break;	/* IIR: no interrupt pending */
			case UART_LCR: *data = com1_lcr; break;
			case 4: *data = com1_mcr; break;
			case UART_LSR: *data = LSR_IDLE; break;
			case 6: *data = 0; break;
			case UART_SCR: *data = com1_scr; break;
			}
		}
		return;
	}
	if (port == I8042_COMMAND && write && *data == I8042_RESET)
		end_vm();
	if (!write)
		*data = 0xff;
}

static void handle_io(struct kvm_run *run)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	int write = run->io.direction == KVM_EXIT_IO_OUT;
	uint32_t n = run->io.size * run->io.count;
	if (threaded)
		pthread_mutex_lock(&dev_lock);
	for (uint32_t i = 0; i < n; i++)
		io_access((uint16_t)(run->io.port + (i % run->io.size)), write, data + i);
	if (threaded)
		pthread_mutex_unlock(&dev_lock);
}

static void handle_mmio(struct kvm_run *run)
{
	uint64_t a = run->mmio.phys_addr;
	uint32_t len = run->mmio.len;
	if (a >= REGFILE_BASE && a + len <= REGFILE_BASE + REGFILE_SIZE) {
		if (threaded)
			pthread_mutex_lock(&dev_lock);
		if (run->mmio.is_write)
			memcpy(regfile + (a - REGFILE_BASE), run->mmio.data, len);
		else
			memcpy(run->mmio.data, regfile + (a - REGFILE_BASE), len);
		if (threaded)
			pthread_mutex_unlock(&dev_lock);
	} else if (!run->mmio.is_write) {
		memset(run->mmio.data, 0xff, len);
	}
}

/* ---- The VM ---- */
struct vcpu {
	int id, fd;
	struct kvm_run *run;
	pthread_t thread;
};

static int kvm_fd, vm_fd, ncpus = 1;
static uint8_t *ram;
static uint64_t ram_size = 128ULL << 20;
static struct vcpu vcpus[MAX_CPUS];
static size_t run_size;

static uint64_t load_elf(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die(path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		die("fstat");
	uint8_t *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (img == MAP_FAILED)
		die("mmap elf");
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64) {
		fprintf(stderr, "ref-vmm: %s is not an ELF64 file\n", path);
		exit(1);
	}
	for (int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr *ph = (Elf64_Phdr *)(img + eh->e_phoff + (uint64_t)i * eh->e_phentsize);
		if (ph->p_type != PT_LOAD)
			continue;
		if (ph->p_paddr + ph->p_memsz > ram_size) {
			fprintf(stderr, "ref-vmm: segment %d does not fit in RAM\n", i);
			exit(1);
		}
		memcpy(ram + ph->p_paddr, img + ph->p_offset, ph->p_filesz);
		memset(ram + ph->p_paddr + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
	}
	uint64_t entry = eh->e_entry;
	munmap(img, (size_t)st.st_size);
	close(fd);
	return entry;
}

static uint64_t gdt_entry(uint64_t flags, uint64_t base, uint64_t limit)
{
	return ((base & 0xff000000ULL) << 32) | ((flags & 0xf0ffULL) << 40) | ((limit & 0xf0000ULL) << 32) |
	       ((base & 0xffffffULL) << 16) | (limit & 0xffffULL);
}

static struct kvm_segment seg_from(uint64_t d, int index)
{
	struct kvm_segment s = { 0 };
	s.base = ((d >> 32) & 0xff000000ULL) | ((d >> 16) & 0xffffffULL);
	uint32_t raw = (uint32_t)(((d >> 32) & 0xf0000ULL) | (d & 0xffffULL));
	s.g = (d >> 55) & 1;
	s.limit = s.g ? ((raw << 12) | 0xfff) : raw;
	s.selector = (uint16_t)(index * 8);
	s.type = (d >> 40) & 0xf;
	s.present = (d >> 47) & 1;
	s.dpl = (d >> 45) & 3;
	s.db = (d >> 54) & 1;
	s.s = (d >> 44) & 1;
	s.l = (d >> 53) & 1;
	s.avl = (d >> 52) & 1;
	s.unusable = s.present ? 0 : 1;
	return s;
}

static void write_boot_tables(void)
{
	uint64_t gdt[4] = {
		gdt_entry(0, 0, 0),
		gdt_entry(0xa09b, 0, 0xfffff),	/* 64-bit code */
		gdt_entry(0xc093, 0, 0xfffff),	/* flat data */
		gdt_entry(0x808b, 0, 0xfffff),	/* 64-bit TSS */
	};
	memcpy(ram + BOOT_GDT_START, gdt, sizeof gdt);
	memset(ram + BOOT_IDT_START, 0, 8);
	memset(ram + PML4_START, 0, 0x1000);
	memset(ram + PDPTE_START, 0, 0x1000);
	*(uint64_t *)(ram + PML4_START) = PDPTE_START | 3;
	*(uint64_t *)(ram + PDPTE_START) = PDE_START | 3;
	for (uint64_t i = 0; i < 512; i++)
		*(uint64_t *)(ram + PDE_START + i * 8) = (i << 21) | 0x83;
}

static void setup_bsp(struct vcpu *v, uint64_t entry)
{
	struct kvm_sregs sregs;
	xioctl(v->fd, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	uint64_t gdt[4] = {
		gdt_entry(0, 0, 0), gdt_entry(0xa09b, 0, 0xfffff), gdt_entry(0xc093, 0, 0xfffff),
		gdt_entry(0x808b, 0, 0xfffff),
	};
	sregs.cs = seg_from(gdt[1], 1);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = seg_from(gdt[2], 2);
	sregs.tr = seg_from(gdt[3], 3);
	sregs.gdt.base = BOOT_GDT_START;
	sregs.gdt.limit = 4 * 8 - 1;
	sregs.idt.base = BOOT_IDT_START;
	sregs.idt.limit = 7;
	sregs.cr0 |= 0x1 | 0x80000000ULL;
	sregs.cr3 = PML4_START;
	sregs.cr4 |= 0x20;
	sregs.efer |= 0x100 | 0x400;
	xioctl(v->fd, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
	struct kvm_regs regs = { 0 };
	regs.rip = entry;
	regs.rsp = regs.rbp = BOOT_STACK_POINTER;
	regs.rsi = ZERO_PAGE_START;
	regs.rflags = 2;
	xioctl(v->fd, KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

static void setup_vcpu_common(struct vcpu *v, struct kvm_cpuid2 *supported)
{
	/* CPUID: the supported set, leaf 1 and the topology leaves shaped for this vCPU. */
	size_t bytes = sizeof(struct kvm_cpuid2) + supported->nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = malloc(bytes);
	memcpy(c, supported, bytes);
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == 1) {
			e->ebx = ((uint32_t)v->id << 24) | (8 << 8);
			if (ncpus > 1) {
				e->ebx |= (uint32_t)ncpus << 16;
				e->edx |= 1u << 28;
			}
			e->ecx |= (1u << 31) | (1u << 21) | (1u << 24);
		} else if (e->function == 0xb || e->function == 0x1f) {
			e->edx = (uint32_t)v->id;
		}
	}
	xioctl(v->fd, KVM_SET_CPUID2, c, "KVM_SET_CPUID2");
	free(c);

	/* MSRs: Firecracker's boot list, as src/arch/msrs.ts. */
	static const uint32_t cleared[] = { 0x174, 0x175, 0x176, 0xc0000081, 0xc0000083, 0xc0000102, 0xc0000084,
					    0xc0000082, 0x10 };
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[11];
	} msrs;
	memset(&msrs, 0, sizeof msrs);
	for (int i = 0; i < 9; i++)
		msrs.e[i].index = cleared[i];
	msrs.e[9].index = 0x1a0;
	msrs.e[9].data = 1;
	msrs.e[10].index = 0x2ff;
	msrs.e[10].data = 0x806;
	msrs.h.nmsrs = 11;
	if (ioctl(v->fd, KVM_SET_MSRS, &msrs) != 11)
		die("KVM_SET_MSRS");

	struct kvm_fpu fpu;
	xioctl(v->fd, KVM_GET_FPU, &fpu, "KVM_GET_FPU");
	memset(&fpu, 0, sizeof fpu);
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	xioctl(v->fd, KVM_SET_FPU, &fpu, "KVM_SET_FPU");

	struct kvm_lapic_state lapic;
	xioctl(v->fd, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
	uint32_t *lint0 = (uint32_t *)(lapic.regs + 0x350), *lint1 = (uint32_t *)(lapic.regs + 0x360);
	*lint0 = (*lint0 & ~0x700u) | (7u << 8);
	*lint1 = (*lint1 & ~0x700u) | (4u << 8);
	xioctl(v->fd, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
}

static void *vcpu_loop(void *arg)
{
	struct vcpu *v = arg;
	struct kvm_run *run = v->run;
	for (;;) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("KVM_RUN");
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(run);
			break;
		case KVM_EXIT_MMIO:
			handle_mmio(run);
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_HLT:
			fprintf(stderr, "ref-vmm: vCPU %d halted\n", v->id);
			flush_out();
			_exit(5);
		case KVM_EXIT_SHUTDOWN:
			fprintf(stderr, "ref-vmm: vCPU %d shutdown (triple fault)\n", v->id);
			flush_out();
			_exit(3);
		case KVM_EXIT_INTERNAL_ERROR:
			fprintf(stderr, "ref-vmm: vCPU %d internal error, suberror %u\n", v->id, run->internal.suberror);
			flush_out();
			_exit(4);
		default:
			fprintf(stderr, "ref-vmm: vCPU %d unhandled exit %u\n", v->id, run->exit_reason);
			flush_out();
			_exit(5);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *kernel = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--cpus") && i + 1 < argc)
			ncpus = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--mem") && i + 1 < argc)
			ram_size = (uint64_t)atoi(argv[++i]) << 20;
		else if (!strcmp(argv[i], "--kernel") && i + 1 < argc)
			kernel = argv[++i];
		else
			kernel = argv[i];
	}
	if (!kernel || ncpus < 1 || ncpus > MAX_CPUS) {
		fprintf(stderr, "usage: ref-vmm [--cpus N] [--mem MiB] guest.elf\n");
		return 2;
	}
	threaded = ncpus > 1;

	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0)
		die("/dev/kvm");
	vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm_fd < 0)
		die("KVM_CREATE_VM");
	if (ioctl(vm_fd, KVM_SET_TSS_ADDR, TSS_ADDR) < 0)
		die("KVM_SET_TSS_ADDR");
	uint64_t idmap = IDENTITY_MAP_ADDR;
	xioctl(vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap, "KVM_SET_IDENTITY_MAP_ADDR");
	if (ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		die("KVM_CREATE_IRQCHIP");
	struct kvm_pit_config pit = { 0 };
	xioctl(vm_fd, KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");

	ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ram == MAP_FAILED)
		die("mmap ram");
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = ram_size, .userspace_addr = (uint64_t)(uintptr_t)ram,
	};
	xioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");

	uint64_t entry = load_elf(kernel);
	write_boot_tables();

	struct kvm_cpuid2 *supported = calloc(1, sizeof(struct kvm_cpuid2) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	supported->nent = CPUID_MAX_ENTRIES;
	xioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, supported, "KVM_GET_SUPPORTED_CPUID");

	int mmap_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size < 0)
		die("KVM_GET_VCPU_MMAP_SIZE");
	run_size = (size_t)mmap_size;
	/* Every vCPU exists before any runs (an AP created after the SIPI would miss it). */
	for (int i = 0; i < ncpus; i++) {
		struct vcpu *v = &vcpus[i];
		v->id = i;
		v->fd = ioctl(vm_fd, KVM_CREATE_VCPU, i);
		if (v->fd < 0)
			die("KVM_CREATE_VCPU");
		v->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED)
			die("mmap kvm_run");
		setup_vcpu_common(v, supported);
	}
	setup_bsp(&vcpus[0], entry);

	if (ncpus == 1) {
		vcpu_loop(&vcpus[0]);
		return 0;
	}
	for (int i = 1; i < ncpus; i++)
		if (pthread_create(&vcpus[i].thread, NULL, vcpu_loop, &vcpus[i]) != 0)
			die("pthread_create");
	vcpu_loop(&vcpus[0]);
	return 0;
}
