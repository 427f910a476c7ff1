/*
 * The exit-path bench guest. One source, three programs (bench/guest/Makefile):
 *
 *   exit-bench.elf  (BENCH_EXIT)  times exits of each kind with the TSC: one at a time,
 *                                 then B2B_ITERATIONS back to back
 *   smp-bench.elf   (BENCH_SMP)   every CPU does forwarded reads at once
 *   idle.elf        (BENCH_IDLE)  prints one line, then sti; hlt forever
 *
 * Output lines (parsed by the bench scripts):
 *   bench: tsc-hz=2596000000 source=pit
 *   bench: <kind> median=22104 p90=23011 min=21877 mean=22300 n=2000   (the first kind is timer-only)
 *   bench: b2b <kind> total=451000000 n=20000 avg=22550                  (every kind but timer-only)
 *   smp: cpus=N iters=I wall-cycles=W per-exit-median=M per-exit-max=X
 *   idle: boot                (first thing guest_main does: the startup bench's "first byte")
 *   idle: ready cpus=N
 *
 * Every sample is lfence; rdtsc; lfence; <one access>; lfence; rdtsc; lfence,
 * so it is the guest-visible cost of one exit round trip plus the cost of the
 * timing bracket itself. "timer-only" samples the bracket with nothing in it:
 * on bare metal that is ~50 cycles, but under this host's PVM KVM it costs
 * about as much as an exit (~17,600 cycles), so the bench scripts subtract
 * its median, measured in the same run, from every other kind's.
 *
 * The back-to-back figures are what a guest doing I/O feels: B2B_ITERATIONS
 * accesses of one kind between two rdtsc reads, no bracket per exit, unrolled
 * eight to a loop turn (rep outsb: one 16-byte string per turn, n counting its
 * bytes), so the loop adds about a quarter of an instruction per exit, the
 * same under every VMM. avg = total / n.
 */
#include "guest.h"
#include "interrupts.h"
#include "smp.h"

/* ---- What the accesses hit ---- */
/* A port no device claims in tsvmm, the C reference or QEMU's -M pc -nodefaults. */
#define UNCLAIMED_PORT 0x300
/* COM1's scratch register: a real device, served on tsvmm's device thread. */
#define SCRATCH_PORT (COM1_BASE + 7)
/* The register-file device the runners put at the start of the MMIO gap (unassigned in QEMU). */
#define DEVICE_MMIO 0xd0000000UL
/* An address in the MMIO gap nobody claims. */
#define UNCLAIMED_MMIO 0xd0100000UL

#define WARMUP 200
#ifndef ITERATIONS
#define ITERATIONS 2000
#endif
#ifndef SMP_ITERATIONS
#define SMP_ITERATIONS 2000
#endif
#define STRING_BYTES 16
#ifndef B2B_ITERATIONS
#define B2B_ITERATIONS 20000
#endif
#define B2B_UNROLL 8

/* ---- TSC frequency: tsc_hz_detect() (guests/common/tsc.c). 0 means unknown and is printed
 * as such, so the bench scripts fall back to the host's clock rather than to a guess. ---- */
static const char *tsc_source = "none";

static uint64_t hz;

/* ---- Starting the APs (guests/smp's trampoline.S and ap-start.c are linked in) ---- */
volatile uint32_t ap_online;

/* CPUID.1:EBX[23:16], 0 counting as 1 (QEMU reports it with -smp N,sockets=1,cores=N). */
__attribute__((unused)) static uint32_t cpus_expected(void)
{
	uint32_t a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	uint32_t n = (b >> 16) & 0xff;
	if (!(d & (1u << 28)) || n == 0)
		n = 1;
	return n;
}

/* Starts every AP into ap_main and waits up to 2 s for expected - 1 check-ins; returns CPUs online. */
__attribute__((unused)) static uint32_t start_aps(uint32_t expected)
{
	return smp_start_aps(expected, &ap_online, hz);
}

/* ---- Sorting and summarising samples ---- */

#if defined(BENCH_EXIT)
static uint64_t samples[ITERATIONS];
static uint8_t string_buf[STRING_BYTES] = "0123456789abcdef";

enum kind {
	TIMER_ONLY,
	PORT_WRITE_UNCLAIMED,
	PORT_READ_UNCLAIMED,
	PORT_WRITE_DEVICE,
	PORT_READ_DEVICE,
	PORT_STRING_DEVICE,
	MMIO_READ_UNCLAIMED,
	MMIO_WRITE_UNCLAIMED,
	MMIO_READ_DEVICE,
	MMIO_WRITE_DEVICE,
	KIND_COUNT
};
static const char *const kind_names[KIND_COUNT] = {
	"timer-only",
	"port-write-unclaimed",
	"port-read-unclaimed",
	"port-write-device",
	"port-read-device",
	"port-outsb16-device",
	"mmio-read-unclaimed",
	"mmio-write-unclaimed",
	"mmio-read-device",
	"mmio-write-device",
};

static volatile uint32_t sink;

/* One timed access of 'kind'. */
static uint64_t one(enum kind kind, uint32_t i)
{
	uint64_t t0 = rdtsc_fenced();
	switch (kind) {
	case TIMER_ONLY: break;
	case PORT_WRITE_UNCLAIMED: outb(UNCLAIMED_PORT, (uint8_t)i); break;
	case PORT_READ_UNCLAIMED: sink = inb(UNCLAIMED_PORT); break;
	case PORT_WRITE_DEVICE: outb(SCRATCH_PORT, (uint8_t)i); break;
	case PORT_READ_DEVICE: sink = inb(SCRATCH_PORT); break;
	case PORT_STRING_DEVICE: {
		const void *src = string_buf;
		size_t n = STRING_BYTES;
		__asm__ volatile("rep outsb" : "+S"(src), "+c"(n) : "d"((uint16_t)SCRATCH_PORT) : "memory");
		break;
	}
	case MMIO_READ_UNCLAIMED: sink = mmio_read32(UNCLAIMED_MMIO); break;
	case MMIO_WRITE_UNCLAIMED: mmio_write32(UNCLAIMED_MMIO, i); break;
	case MMIO_READ_DEVICE: sink = mmio_read32(DEVICE_MMIO + 8); break;
	case MMIO_WRITE_DEVICE: mmio_write32(DEVICE_MMIO + 8, i); break;
	default: break;
	}
	return rdtsc_fenced() - t0;
}

#define X8(s) s s s s s s s s

/* B2B_ITERATIONS accesses of 'kind' back to back; returns the cycles they took. */
static uint64_t back_to_back(enum kind kind)
{
	const uint32_t turns = B2B_ITERATIONS / B2B_UNROLL;
	const uint16_t port = kind == PORT_WRITE_UNCLAIMED || kind == PORT_READ_UNCLAIMED ? UNCLAIMED_PORT : SCRATCH_PORT;
	volatile uint32_t *mmio = (volatile uint32_t *)(kind == MMIO_READ_UNCLAIMED || kind == MMIO_WRITE_UNCLAIMED
								? UNCLAIMED_MMIO : DEVICE_MMIO + 8);
	uint64_t t0 = rdtsc_fenced();
	switch (kind) {
	case PORT_WRITE_UNCLAIMED:
	case PORT_WRITE_DEVICE:
		for (uint32_t i = 0; i < turns; i++)
			__asm__ volatile(X8("outb %%al, %%dx\n\t") : : "a"((uint8_t)i), "d"(port));
		break;
	case PORT_READ_UNCLAIMED:
	case PORT_READ_DEVICE:
		for (uint32_t i = 0; i < turns; i++)
			__asm__ volatile(X8("inb %%dx, %%al\n\t") : : "d"(port) : "rax");
		break;
	case PORT_STRING_DEVICE:
		for (uint32_t i = 0; i < B2B_ITERATIONS / STRING_BYTES; i++) {
			const void *src = string_buf;
			size_t n = STRING_BYTES;
			__asm__ volatile("rep outsb" : "+S"(src), "+c"(n) : "d"(port) : "memory");
		}
		break;
	case MMIO_READ_UNCLAIMED:
	case MMIO_READ_DEVICE:
		for (uint32_t i = 0; i < turns; i++)
			__asm__ volatile(X8("movl (%0), %%eax\n\t") : : "r"(mmio) : "rax", "memory");
		break;
	case MMIO_WRITE_UNCLAIMED:
	case MMIO_WRITE_DEVICE:
		for (uint32_t i = 0; i < turns; i++)
			__asm__ volatile(X8("movl %%eax, (%0)\n\t") : : "r"(mmio), "a"(i) : "memory");
		break;
	default:
		break;
	}
	return rdtsc_fenced() - t0;
}

static void bench_exits(void)
{
	/* Sanity: the device and the scratch register must hold what was written. */
	outb(SCRATCH_PORT, 0x5a);
	mmio_write32(DEVICE_MMIO + 8, 0x12345678);
	printf("bench: check scratch=0x%x mmio-device=0x%x mmio-unclaimed=0x%x port-unclaimed=0x%x\n",
	       inb(SCRATCH_PORT), mmio_read32(DEVICE_MMIO + 8), mmio_read32(UNCLAIMED_MMIO), inb(UNCLAIMED_PORT));
	for (unsigned k = 0; k < KIND_COUNT; k++) {
		for (uint32_t i = 0; i < WARMUP; i++)
			one((enum kind)k, i);
		for (uint32_t i = 0; i < ITERATIONS; i++)
			samples[i] = one((enum kind)k, i);
		uint64_t sum = 0;
		for (uint32_t i = 0; i < ITERATIONS; i++)
			sum += samples[i];
		sort_u64(samples, ITERATIONS);
		printf("bench: %s median=%lu p90=%lu min=%lu mean=%lu n=%u\n", kind_names[k],
		       samples[ITERATIONS / 2], samples[ITERATIONS * 9 / 10], samples[0], sum / ITERATIONS,
		       (unsigned)ITERATIONS);
		if (k == TIMER_ONLY)
			continue;
		uint64_t total = back_to_back((enum kind)k);
		printf("bench: b2b %s total=%lu n=%u avg=%lu\n", kind_names[k], total, (unsigned)B2B_ITERATIONS,
		       total / B2B_ITERATIONS);
	}
}
#endif

/* The trampoline (linked into every variant) calls ap_main. */
static volatile uint32_t go;
static volatile uint32_t done;
static volatile uint64_t cpu_cycles[MAX_APS + 1];

#if defined(BENCH_SMP)
/* Every CPU: SMP_ITERATIONS forwarded reads of the scratch register; returns the cycles they took. */
static uint64_t smp_work(void)
{
	uint64_t t0 = rdtsc_fenced();
	for (uint32_t i = 0; i < SMP_ITERATIONS; i++)
		(void)inb(SCRATCH_PORT);
	return rdtsc_fenced() - t0;
}
#endif

void ap_main(uint32_t slot);
void ap_main(uint32_t slot)
{
	lock_xadd32(&ap_online, 1);
#if defined(BENCH_SMP)
	while (!go)
		cpu_relax();
	cpu_cycles[slot + 1] = smp_work();
	lock_xadd32(&done, 1);
#else
	(void)slot;
#endif
	halt_forever();
}

void guest_main(void)
{
#if defined(BENCH_IDLE)
	printf("idle: boot\n");
	uint32_t expected = cpus_expected();
	if (expected > 1)
		hz = tsc_hz_detect(&tsc_source);
	uint32_t n = start_aps(expected);
	printf("idle: ready cpus=%u\n", n);
	pic_mask_all(); /* an idle guest takes no stray interrupt */
	for (;;)
		sti_hlt();
#elif defined(BENCH_SMP)
	hz = tsc_hz_detect(&tsc_source);
	printf("bench: tsc-hz=%lu source=%s\n", hz, tsc_source);
	uint32_t expected = cpus_expected();
	uint32_t n = start_aps(expected);
	if (n > MAX_APS + 1)
		n = MAX_APS + 1;
	uint64_t t0 = rdtsc_fenced();
	go = 1;
	cpu_cycles[0] = smp_work();
	lock_xadd32(&done, 1);
	while (done < n)
		cpu_relax();
	uint64_t wall = rdtsc_fenced() - t0;
	uint64_t per[MAX_APS + 1];
	for (uint32_t i = 0; i < n; i++)
		per[i] = cpu_cycles[i] / SMP_ITERATIONS;
	sort_u64(per, n);
	printf("smp: cpus=%u expected=%u iters=%u wall-cycles=%lu per-exit-median=%lu per-exit-max=%lu\n",
	       n, expected, (unsigned)SMP_ITERATIONS, wall, per[n / 2], per[n - 1]);
#else
	hz = tsc_hz_detect(&tsc_source);
	printf("bench: tsc-hz=%lu source=%s\n", hz, tsc_source);
	bench_exits();
	printf("bench: done\n");
#endif
}
