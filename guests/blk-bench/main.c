/*
 * blk-bench: times a modern virtio-blk PCI device (1af4:1042) by polling, for
 * bench/virtio-blk.js. Features: VERSION_1 (required), EVENT_IDX, SEG_MAX,
 * SIZE_MAX, BLK_SIZE and FLUSH when offered (FLUSH so that QEMU keeps its
 * write cache on, as tsvmm has: no request here ever flushes). No interrupts:
 * IF stays 0, MSI-X stays off and the driver asks for no used-buffer
 * notifications, so what is timed is the device, not an interrupt path.
 *
 * Its own queue 0 of BENCH_QSIZE entries (the common driver's queues hold 32;
 * 16 requests of 3 descriptors need 48): request slot k is always descriptors
 * 3k (16-byte header), 3k+1 (data, one descriptor) and 3k+2 (status byte),
 * written once, so a request costs the guest a sector store, a status store,
 * an avail entry and (unless EVENT_IDX suppresses it) one notify write.
 * Guest instructions are slow under nested KVM: nothing per request walks a
 * buffer. A read is checked by the le32 tag at the start of its first (and, for
 * 1 MiB, last) sector, which the image pattern (virtio-blk.h) sets to the
 * sector number; the script writes that image.
 *
 * Disk layout (capacity C sectors, at least 16 MiB): random 4 KiB reads over
 * [0, C - 8 MiB) at 4 KiB-aligned sectors from a 64-bit LCG; 1 MiB sequential
 * reads over [0, 8 MiB); 1 MiB sequential writes over [C - 8 MiB, C) (the
 * data is whatever the big buffer holds; the read area is never written).
 * Data buffers live at fixed guest-physical addresses (BUF_BASE, 32 MiB up;
 * the guests' RAM is 128 MiB), outside .bss, so start.S does not clear them.
 *
 * Each workload is preceded by untimed warm-up requests (touching every
 * buffer page once on the host side) and timed by rdtsc around the whole
 * batch; QD1 workloads also bracket every request (rdtsc before the sector
 * store, rdtsc after its used element is seen), and the per-request figures
 * are net of the median of an empty bracket, printed as bracket_cycles.
 *
 * Output (one line each; the script parses the workload lines):
 *   blk-bench: found at 00:SS.F
 *   blk-bench: barN 0x... size 0x... 32-bit|64-bit [assigned] [mapped above 4 GiB]  (one per BAR used)
 *   blk-bench: offered 0x... negotiated 0x...
 *   blk-bench: capacity=<sectors> blk_size=<n|0> seg_max=<n|none> size_max=<n|none> queue=<entries> event_idx=<0|1>
 *   blk-bench: tsc_hz=<hz> source=<cpuid-0x15|cpuid-0x40000010|pit|cpuid-0x16|none> bracket_cycles=<median>
 *   blk-bench: <workload> qd<D> n=<requests> bytes=<per request> total_cycles=<batch> [batches=.. guest_cycles=..] [median_cycles=.. mean_cycles=.. min_cycles=.. p90_cycles=.. max_cycles=..] notifies=<n> suppressed=<n> tsc_hz=<hz>
 *     for workload = rand-read-4k (qd1, with the per-request figures; qd16, with batches and guest_cycles),
 *     seq-read-1m and seq-write-1m (qd1, with the per-request figures). QD1 total_cycles are net of
 *     the per-request brackets (n * bracket_cycles taken off); the per-request figures are net of one
 *     bracket each. QD16: batches = passes of "drain what completed, post as many, one notify";
 *     guest_cycles = the guest's own time in them summed (first completion seen to the notify done),
 *     so total_cycles - guest_cycles is the time spent waiting for the device.
 *   blk-bench: done
 * A failure prints "blk-bench: FAIL <what>" and the guest resets there.
 */
#include "guest.h"
#include "virtio-blk.h"

#define NAME "blk-bench"
#define WANTED (VIRTIO_RING_F_EVENT_IDX | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_SIZE_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH)

#define BENCH_QSIZE 64
#define QD_MAX 16
#define SLOTS (QD_MAX + 1)	/* slot QD_MAX: the 1 MiB requests */
#define BIG_SLOT QD_MAX

#define N_RAND_QD1 1000
#define N_RAND_QD16 4000
#define N_SEQ 64		/* 64 MiB each way: eight passes over the 8 MiB areas */
#define WARMUP 16
#define BRACKETS 64

#define SMALL_BYTES 4096u
#define BIG_BYTES (1024u * 1024u)
#define AREA_BYTES (8ull * 1024 * 1024)
#define AREA_SECTORS (AREA_BYTES / SECTOR_SIZE)
#define MIN_CAPACITY (2 * AREA_SECTORS)
#define BUF_BASE 0x2000000ul	/* 32 MiB: QD_MAX small buffers, then the 1 MiB one */
#define BIG_BUF (BUF_BASE + QD_MAX * SMALL_BYTES)

#define VIRTIO_BLK_CFG_SIZE_MAX 8
#define VIRTIO_BLK_CFG_SEG_MAX 12
#define SPINS 20000000u		/* bound on one wait for a used element (a request takes well under 10k) */

static struct virtq_desc qdesc[BENCH_QSIZE] __attribute__((aligned(4096)));
static uint16_t qavail[3 + BENCH_QSIZE] __attribute__((aligned(4096)));
static uint32_t qused[1 + 2 * BENCH_QSIZE + 1] __attribute__((aligned(4096)));
static struct virtio_blk_req_hdr hdr[SLOTS] __attribute__((aligned(16)));
static volatile uint8_t status[SLOTS] __attribute__((aligned(16)));
static uint64_t lat[N_RAND_QD1 > N_SEQ ? N_RAND_QD1 : N_SEQ];
static uint64_t brackets[BRACKETS];

static struct virtio_pci vp;
static struct virtq vq;
static uint64_t capacity, hz, bracket;
static uint64_t lcg_state = 0x853c49e6748fea9bull;
static uint32_t bad;	/* reads whose tag was wrong */
static uint64_t qd16_guest_cycles;	/* QD16: the guest's own time per batch, summed (first completion seen -> kick done) */
static uint32_t qd16_batches;

static void fail(const char *what) { printf(NAME ": FAIL %s\n", what); }

static void write64(uintptr_t lo, uint64_t v)
{
	mmio_write32(lo, (uint32_t)v);
	mmio_write32(lo + 4, (uint32_t)(v >> 32));
}

/* Queue 0 in qdesc/qavail/qused with min(BENCH_QSIZE, device max) entries, no MSI-X vector; enabled. */
static int queue_setup(void)
{
	memset(&vq, 0, sizeof(vq));
	mmio_write16(vp.common + VIRTIO_COMMON_Q_SELECT, 0);
	uint16_t max = mmio_read16(vp.common + VIRTIO_COMMON_Q_SIZE);
	uint16_t size = BENCH_QSIZE;
	while (size > max)
		size >>= 1;
	if (size < 3 * QD_MAX) {
		printf(NAME ": FAIL queue 0 has %u entries, %u needed\n", max, 3 * QD_MAX);
		return -1;
	}
	vq.size = size;
	vq.desc = qdesc;
	vq.avail = qavail;
	vq.used = (volatile uint16_t *)qused;
	vq.event_idx = (vp.features & VIRTIO_RING_F_EVENT_IDX) != 0;
	mmio_write16(vp.common + VIRTIO_COMMON_Q_SIZE, size);
	write64(vp.common + VIRTIO_COMMON_Q_DESCLO, (uintptr_t)qdesc);
	write64(vp.common + VIRTIO_COMMON_Q_AVAILLO, (uintptr_t)qavail);
	write64(vp.common + VIRTIO_COMMON_Q_USEDLO, (uintptr_t)qused);
	mmio_write16(vp.common + VIRTIO_COMMON_Q_MSIX, VIRTIO_MSI_NO_VECTOR);
	uint32_t at = (uint32_t)mmio_read16(vp.common + VIRTIO_COMMON_Q_NOFF) * vp.notify_mult;
	if (at + 2 > vp.notify_len) {
		fail("queue 0 notify offset outside the notify region");
		return -1;
	}
	vq.notify = vp.notify + at;
	mmio_write16(vp.common + VIRTIO_COMMON_Q_ENABLE, 1);
	return 0;
}

/* Slot k's three descriptors, once: header, `len` bytes at `buf` (device-writable for reads), status. */
static void slot_init(unsigned k, uintptr_t buf, uint32_t len, uint32_t type)
{
	uint16_t d = (uint16_t)(3 * k);
	hdr[k].type = type;
	hdr[k].reserved = 0;
	virtq_set_desc(&vq, d, &hdr[k], sizeof(hdr[k]), VIRTQ_DESC_F_NEXT, d + 1);
	virtq_set_desc(&vq, d + 1, (void *)buf, len, (uint16_t)((type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0) | VIRTQ_DESC_F_NEXT), d + 2);
	virtq_set_desc(&vq, d + 2, &status[k], 1, VIRTQ_DESC_F_WRITE, 0);
}

static inline void slot_post(unsigned k, uint64_t sector)
{
	hdr[k].sector = sector;
	status[k] = 0xff;
	virtq_post(&vq, (uint16_t)(3 * k));
}

static inline uint32_t tag_at(uintptr_t addr) { return *(volatile uint32_t *)addr; }

/* Waits (bounded) for the next used element; checks it is a slot head with status OK and used len `want`. Returns the slot or -1. */
static int wait_slot(uint32_t want)
{
	uint32_t id, len;
	if (!virtq_wait_used(&vq, &id, &len, SPINS)) {
		printf(NAME ": FAIL no completion (used idx %u, device_status 0x%x)\n", virtq_used_idx(&vq), virtio_status(&vp));
		return -1;
	}
	unsigned k = id / 3;
	if (id % 3 || k >= SLOTS || len != want || status[k] != VIRTIO_BLK_S_OK) {
		printf(NAME ": FAIL used id %u len %u status %u, expected a slot head, len %u, status 0\n", id, len, k < SLOTS ? status[k] : 0xff, want);
		return -1;
	}
	return (int)k;
}

static inline uint64_t rand_sector(uint64_t blocks)
{
	lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
	return ((lcg_state >> 24) % blocks) * (SMALL_BYTES / SECTOR_SIZE);
}


/* Median of an empty rdtsc bracket (the same two reads the QD1 loops take per request). */
static uint64_t measure_bracket(void)
{
	for (unsigned i = 0; i < BRACKETS; i++) {
		uint64_t t0 = rdtsc_fenced();
		uint64_t t1 = rdtsc_fenced();
		brackets[i] = t1 - t0;
	}
	sort_u64(brackets, BRACKETS);
	return brackets[BRACKETS / 2];
}

static void report(const char *workload, unsigned qd, uint32_t n, uint32_t bytes, uint64_t total, int per_request)
{
	printf(NAME ": %s qd%u n=%u bytes=%u total_cycles=%lu", workload, qd, n, bytes, total);
	if (qd > 1)
		printf(" batches=%u guest_cycles=%lu", qd16_batches, qd16_guest_cycles);
	if (per_request) {
		uint64_t sum = 0;
		for (uint32_t i = 0; i < n; i++) {
			lat[i] = lat[i] > bracket ? lat[i] - bracket : 0;
			sum += lat[i];
		}
		sort_u64(lat, n);
		printf(" median_cycles=%lu mean_cycles=%lu min_cycles=%lu p90_cycles=%lu max_cycles=%lu", lat[n / 2], sum / n, lat[0],
		       lat[(n * 9) / 10], lat[n - 1]);
	}
	printf(" notifies=%u suppressed=%u tsc_hz=%lu\n", vq.notifications, vq.suppressed, hz);
}

static void reset_counters(void) { vq.notifications = vq.suppressed = 0; }

/* QD1: one request at a time on slot 0 (4 KiB) or BIG_SLOT; lat[i] per request when `timed`. */
static int run_qd1(unsigned k, uint32_t n, uint64_t (*next)(uint32_t i), uintptr_t buf, uint32_t bytes, int read, int timed)
{
	uint32_t want = read ? bytes + 1 : 1;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t sector = next(i);
		uint64_t t0 = timed ? rdtsc_fenced() : 0;
		slot_post(k, sector);
		virtq_kick(&vq);
		if (wait_slot(want) != (int)k)
			return -1;
		if (timed)
			lat[i] = rdtsc_fenced() - t0;
		if (read && (tag_at(buf) != (uint32_t)sector || (bytes > SECTOR_SIZE && tag_at(buf + bytes - SECTOR_SIZE) != (uint32_t)(sector + bytes / SECTOR_SIZE - 1))))
			bad++;
	}
	return 0;
}

static uint64_t rand_blocks;
static uint64_t next_rand(uint32_t i) { (void)i; return rand_sector(rand_blocks); }
static uint64_t next_seq_read(uint32_t i) { return (uint64_t)i * (BIG_BYTES / SECTOR_SIZE) % AREA_SECTORS; }
static uint64_t next_seq_write(uint32_t i) { return capacity - AREA_SECTORS + (uint64_t)i * (BIG_BYTES / SECTOR_SIZE) % AREA_SECTORS; }

/* QD16: 16 posted with one notify; then every completion seen is replaced, one notify per batch of replacements. */
static int run_qd16(uint32_t n)
{
	uint64_t sectors[QD_MAX];
	uint32_t posted = 0, done = 0;
	for (unsigned k = 0; k < QD_MAX && posted < n; k++, posted++) {
		sectors[k] = rand_sector(rand_blocks);
		slot_post(k, sectors[k]);
	}
	virtq_kick(&vq);
	qd16_guest_cycles = 0;
	qd16_batches = 0;
	while (done < n) {
		uint32_t before = posted;
		int k = wait_slot(SMALL_BYTES + 1);
		if (k < 0 || k >= QD_MAX)
			return -1;
		uint64_t seen = rdtsc_fenced();
		for (;;) {
			done++;
			if (tag_at(BUF_BASE + (uintptr_t)k * SMALL_BYTES) != (uint32_t)sectors[k])
				bad++;
			if (posted < n) {
				sectors[k] = rand_sector(rand_blocks);
				slot_post((unsigned)k, sectors[k]);
				posted++;
			}
			if (virtq_used_idx(&vq) == vq.last_used)
				break;
			k = wait_slot(SMALL_BYTES + 1);
			if (k < 0 || k >= QD_MAX)
				return -1;
		}
		if (posted != before)
			virtq_kick(&vq);
		qd16_guest_cycles += rdtsc_fenced() - seen;
		qd16_batches++;
	}
	return 0;
}

void guest_main(void)
{
	if (virtio_pci_open(&vp, NAME, VIRTIO_BLK_PCI_ID) || virtio_negotiate(&vp, WANTED))
		return;
	if (virtio_set_config_vector(&vp, VIRTIO_MSI_NO_VECTOR) != VIRTIO_MSI_NO_VECTOR || queue_setup())
		return;
	capacity = virtio_config_read64(&vp, VIRTIO_BLK_CFG_CAPACITY);
	uint32_t blk_size = (vp.features & VIRTIO_BLK_F_BLK_SIZE) ? virtio_config_read32(&vp, VIRTIO_BLK_CFG_BLK_SIZE) : 0;
	int has_seg = (vp.features & VIRTIO_BLK_F_SEG_MAX) != 0, has_size = (vp.features & VIRTIO_BLK_F_SIZE_MAX) != 0;
	uint32_t seg_max = has_seg ? virtio_config_read32(&vp, VIRTIO_BLK_CFG_SEG_MAX) : 0;
	uint32_t size_max = has_size ? virtio_config_read32(&vp, VIRTIO_BLK_CFG_SIZE_MAX) : 0;
	virtio_driver_ok(&vp);
	printf(NAME ": offered 0x%lx negotiated 0x%lx\n", vp.offered, vp.features);
	printf(NAME ": capacity=%lu blk_size=%u seg_max=", capacity, blk_size);
	if (has_seg) printf("%u", seg_max); else printf("none");
	printf(" size_max=");
	if (has_size) printf("%u", size_max); else printf("none");
	printf(" queue=%u event_idx=%u\n", vq.size, vq.event_idx);
	if (virtio_status(&vp) & VIRTIO_STATUS_NEEDS_RESET) {
		fail("device needs reset right after DRIVER_OK");
		return;
	}
	if (capacity < MIN_CAPACITY) {
		fail("capacity below the 16 MiB this guest uses");
		return;
	}
	if (has_size && size_max < BIG_BYTES) {
		/* One data descriptor per request: a device that caps a segment below 1 MiB would need chains. */
		fail("size_max below 1 MiB; this guest sends 1 MiB as one segment");
		return;
	}
	/* No used-buffer notifications: EVENT_IDX used_event behind last_used, else VIRTQ_AVAIL_F_NO_INTERRUPT. */
	virtq_want_interrupt(&vq, 0);
	rand_blocks = (capacity - AREA_SECTORS) / (SMALL_BYTES / SECTOR_SIZE);

	const char *source = "none";
	hz = tsc_hz_detect(&source);
	bracket = measure_bracket();
	printf(NAME ": tsc_hz=%lu source=%s bracket_cycles=%lu\n", hz, source, bracket);

	for (unsigned k = 0; k < QD_MAX; k++)
		slot_init(k, BUF_BASE + k * SMALL_BYTES, SMALL_BYTES, VIRTIO_BLK_T_IN);

	/* 4 KiB random reads, QD1 (warm-up: every small buffer once) */
	for (unsigned k = 0; k < QD_MAX; k++)
		if (run_qd1(k, 1, next_rand, BUF_BASE + k * SMALL_BYTES, SMALL_BYTES, 1, 0))
			return;
	reset_counters();
	uint64_t t0 = rdtsc_fenced();
	if (run_qd1(0, N_RAND_QD1, next_rand, BUF_BASE, SMALL_BYTES, 1, 1))
		return;
	report("rand-read-4k", 1, N_RAND_QD1, SMALL_BYTES, rdtsc_fenced() - t0 - N_RAND_QD1 * bracket, 1);

	/* 4 KiB random reads, QD16 */
	if (run_qd16(WARMUP * 2))
		return;
	reset_counters();
	t0 = rdtsc_fenced();
	if (run_qd16(N_RAND_QD16))
		return;
	report("rand-read-4k", QD_MAX, N_RAND_QD16, SMALL_BYTES, rdtsc_fenced() - t0, 0);

	/* 1 MiB sequential reads (warm-up: one read of the whole buffer) */
	slot_init(BIG_SLOT, BIG_BUF, BIG_BYTES, VIRTIO_BLK_T_IN);
	if (run_qd1(BIG_SLOT, 1, next_seq_read, BIG_BUF, BIG_BYTES, 1, 0))
		return;
	reset_counters();
	t0 = rdtsc_fenced();
	if (run_qd1(BIG_SLOT, N_SEQ, next_seq_read, BIG_BUF, BIG_BYTES, 1, 1))
		return;
	report("seq-read-1m", 1, N_SEQ, BIG_BYTES, rdtsc_fenced() - t0 - N_SEQ * bracket, 1);

	/* 1 MiB sequential writes to the write area (warm-up: one) */
	slot_init(BIG_SLOT, BIG_BUF, BIG_BYTES, VIRTIO_BLK_T_OUT);
	if (run_qd1(BIG_SLOT, 1, next_seq_write, BIG_BUF, BIG_BYTES, 0, 0))
		return;
	reset_counters();
	t0 = rdtsc_fenced();
	if (run_qd1(BIG_SLOT, N_SEQ, next_seq_write, BIG_BUF, BIG_BYTES, 0, 1))
		return;
	report("seq-write-1m", 1, N_SEQ, BIG_BYTES, rdtsc_fenced() - t0 - N_SEQ * bracket, 1);

	if (bad) {
		printf(NAME ": FAIL %u reads did not hold the image pattern's sector tags\n", bad);
		return;
	}
	virtio_reset(&vp);
	printf(NAME ": done\n");
}
